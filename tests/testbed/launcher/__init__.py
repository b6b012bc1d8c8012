"""The parts of AWS that moto leaves out or runs in Docker, played as AWS documents them.

Importing a module installs its part into moto; ``moto_launcher.py`` imports them all.
- ``timing``: the bed's clock for long AWS waits (``QA_TESTBED_TIME_SCALE``).
- ``lambda_invoke``: Lambda invocations run by the cargo-lambda runtime emulator, with
  Lambda's retries of a failed asynchronous invocation.
- ``custom_resources``: the custom-resource protocol: requests, answers checked as
  CloudFormation checks them.
- ``stacks``: CloudFormation's stack operations: every resource in dependency order,
  cancellation and rollback, updates by resolved properties, deletion in reverse order.
- ``ecs``: ECS services that deploy, run and stop tasks, and stabilize as ECS does; tasks on
  the cluster's container instances with host ports, the app's served by ``qa_server_standin``.
- ``extras``: a template bucket's settings, Cloud Map HTTP namespaces.
- ``s3_eventbridge``: S3 object changes as EventBridge events on the default bus, delivered to a
  rule's SQS queue when the queue's policy lets EventBridge send.
- ``sqs_event_source``: Lambda's SQS event source mapping: batching window, batch size, partial
  batch responses, maximum concurrency.
"""
