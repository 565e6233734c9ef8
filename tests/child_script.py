"""A child for tests/test_child.py: what it does is chosen by its first argument."""
import json
import os
import sys
import time

from overhead.harness.child import claim_stdout

mode = sys.argv[1]
proto = claim_stdout()
print("a native library prints here")  # goes to stderr: must not corrupt the protocol
if mode == "echo":
    job = json.loads(sys.stdin.read())
    proto.write("noise {not json\n")
    proto.write(json.dumps({"event": "start", "n": job["n"]}) + "\n")
    proto.write(json.dumps([1, 2, 3]) + "\n")
    proto.write(json.dumps({"event": "done", "threads": os.environ.get("OMP_NUM_THREADS"),
                            "keras": os.environ.get("KERAS_BACKEND")}) + "\n")
elif mode == "crash":
    proto.write(json.dumps({"event": "start"}) + "\n")
    proto.flush()
    sys.stderr.write("ValueError: the reason it died\n")
    sys.exit(3)
elif mode == "kill":
    os.kill(os.getpid(), 9)
elif mode == "hang":
    proto.write(json.dumps({"event": "start"}) + "\n")
    proto.flush()
    time.sleep(60)
