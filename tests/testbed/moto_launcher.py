"""moto_server with the parts a stack needs that moto runs in Docker, leaves out, or does
differently from AWS, each played as AWS documents it (see ``launcher/``).

Run it as moto_server is run: ``python moto_launcher.py -H 127.0.0.1 -p PORT``, with
``QA_LAMBDA_INVOKE_URL`` set to the runtime emulator's invocation URL. Settings:
- ``QA_TESTBED_TIME_SCALE``: AWS seconds to bed seconds, default 0.01.
- ``QA_TESTBED_ECS_TIME_SCALE``: ECS's own clock, default the bed's.
- ``QA_TESTBED_ECS_FAULTS``: a JSON file saying which tasks stop, and how.
- ``QA_TESTBED_AUTHORITIES_DIR``: the folder the app's tasks mount as config/authorities (what
  the seed writes to the EFS access point). When set, each app task on a container instance
  runs a qa_server stand-in on its host port that lists and reloads ``linked_data/*.json``
  there (``launcher/qa_server_standin.py``), so that the reload can call each task as on AWS.
  Unset: no stand-ins.
``GET /moto-api/qa-testbed/event-source-mappings`` tells what each SQS event source mapping
invoked (``launcher/sqs_event_source.py``).
ECS tasks run on the cluster's EC2 instances whose user data says ``ECS_CLUSTER=<cluster>``
(as the ECS agent registers them), with dynamic host ports (``launcher/ecs.py``).
"""

import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from moto.server import main  # noqa: E402

from launcher import custom_resources, ecs, extras, lambda_invoke, s3_eventbridge, sqs_event_source, stacks  # noqa: E402,F401

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s %(message)s")
    if not lambda_invoke.INVOKE_URL:
        sys.exit("moto_launcher: set QA_LAMBDA_INVOKE_URL to the runtime emulator's invocation URL")
    sys.exit(main())
