"""The bed's clock for AWS's long waits: a task starting, Lambda's retry delays, CloudFormation's
three hours on an ECS service. Each is the documented duration times ``QA_TESTBED_TIME_SCALE``
(default 0.01: one AWS minute is 0.6 s here). ServiceTimeout is not scaled: tests set it small.
"""

import os
import threading
import time

SCALE = float(os.environ.get("QA_TESTBED_TIME_SCALE", "0.01"))


def scaled(aws_seconds):
    """How long `aws_seconds` of AWS's time last on the bed."""
    return aws_seconds * SCALE


def wait_until(condition, seconds, cancelled=None, poll=0.02):
    """Polls `condition` until it returns a true value (returned) or `seconds` pass (None).
    Stops early with None when the `cancelled` event is set."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        if cancelled is not None and cancelled.is_set():
            return None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        time.sleep(min(poll, remaining))


def in_background(work, *args):
    thread = threading.Thread(target=work, args=args, daemon=True)
    thread.start()
    return thread


def random_suffix():
    """Like the 12-character suffix CloudFormation gives generated names."""
    import random
    import string

    return "".join(random.choices(string.ascii_uppercase + string.digits, k=12))
