"""moto_server with the parts a stack needs that moto runs in Docker, leaves out, or does
differently from AWS, each played as AWS documents it (see ``launcher/``).

Run it as moto_server is run: ``python moto_launcher.py -H 127.0.0.1 -p PORT``, with
``QA_LAMBDA_INVOKE_URL`` set to the runtime emulator's invocation URL. Settings:
``QA_TESTBED_TIME_SCALE`` (AWS seconds to bed seconds, default 0.01) and
``QA_TESTBED_ECS_FAULTS`` (a JSON file saying which tasks stop, and how).
"""

import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from moto.server import main  # noqa: E402

from launcher import custom_resources, ecs, extras, lambda_invoke, stacks  # noqa: E402,F401

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s %(message)s")
    if not lambda_invoke.INVOKE_URL:
        sys.exit("moto_launcher: set QA_LAMBDA_INVOKE_URL to the runtime emulator's invocation URL")
    sys.exit(main())
