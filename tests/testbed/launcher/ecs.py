"""ECS services that deploy as ECS does, so that CloudFormation can wait for them to be stable.

moto's services count their tasks running from the start and never change. Here a service
has deployments, and a scheduler runs each deployment's tasks:
- A task starts PENDING and is RUNNING after ``TASK_START_SECONDS``, unless the
  faults file (``$QA_TESTBED_ECS_FAULTS``, JSON: ``family:revision``, task definition family or
  container name -> ``{"stoppedReason", "reason", "exitCode", "logLines"}``) says its essential
  container exits: then each container's ``logLines`` (what it printed) are in its awslogs stream,
  ``<awslogs-stream-prefix>/<container name>/<task id>`` of the ``awslogs-group`` (ECS developer
  guide, "Using the awslogs log driver"), and it
  STOPS with that reason and exit code, counts as a failed task of its deployment, and the
  scheduler starts another, as ECS retries failing tasks: "with back-off up to 27 min"
  (REFERENCE.md, "ECS health"; ECS documents the cap, not the curve: the bed doubles from
  ``RETRY_BACKOFF_SECONDS``).
- ECS's clock is ``QA_TESTBED_ECS_TIME_SCALE`` (default: the bed's scale). The health wait
  polls ECS on its own, real clock, so a bed that tests the race between the wait and the
  circuit breaker keeps ECS near AWS's pace.
- The deployment circuit breaker (when the service enables it) fails a deployment after
  ``threshold`` failed tasks: 0.5 x desired, at least 3, at most 200 (ECS developer guide,
  "deployment circuit breaker"); with rollback the previous deployment is primary again.
- A new task definition starts a new PRIMARY deployment; once it runs its desired count the
  old deployment's tasks stop and it is dropped, and the rollout is COMPLETED.
``stability`` answers as CloudFormation judges an ``AWS::ECS::Service``: stable when one
deployment runs its desired count (the ``services-stable`` waiter's rule) and its rollout
COMPLETED; failed with the circuit breaker's message ("Error occurred during operation 'ECS
Deployment Circuit Breaker was triggered'", aws-cloudformation/rain #458, aws/copilot-cli #2584).

Tasks run on the cluster's EC2 instances, in bridge mode, so that the authorities reload can
reach each one over the VPC as on AWS (task -> containerInstanceArn -> ec2InstanceId ->
PrivateIpAddress, plus the container's hostPort):
- Container instances: the ECS agent on an instance registers it with the cluster its user
  data names (``ECS_CLUSTER=<name>`` in /etc/ecs/ecs.config, which cfn/aws-deploy.yaml's
  launch template writes; ECS developer guide, "Amazon ECS container agent configuration").
  Before a task is launched, the running EC2 instances whose decoded user data has that line
  and that are not yet registered are registered. A task is placed on the instance with the
  fewest live tasks (spread). A cluster without such instances (the bed's small templates) runs
  its tasks as before: no instance, no bindings.
- Network bindings: once a placed task RUNS, its first container (moto keeps one, from the first
  container definition) gets a binding for that definition's first port mapping when the task
  definition is in bridge mode and the mapping's hostPort is 0 or absent (dynamic: ECS developer
  guide, "PortMapping"): ``{"bindIP": "0.0.0.0", "containerPort", "hostPort", "protocol": "tcp"}``,
  the host port a free port of 127.0.0.1.
- qa_server: when ``$QA_TESTBED_AUTHORITIES_DIR`` is set (the folder the seed writes, the EFS
  access point's stand-in), the app's container (a mount point ending in config/authorities)
  runs ``qa_server_standin.py`` on that host port, with the container's variables as ECS gives
  them (its S3 environment files, read from moto's S3, then its environment): RELOAD_TOKEN
  among them. It stops when the task stops and exits when the launcher does; its output goes to
  ``qa-server-<task id>.log`` beside the launcher's own log when that is a file.
"""

import base64
import json
import logging
import math
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid

from moto.core.types import Base64EncodedString
from moto.core.utils import utcnow
from moto.ec2.models import ec2_backends
from moto.ecs.models import EC2ContainerServiceBackend
from moto.logs.models import logs_backends
from moto.moto_api import state_manager
from moto.s3.exceptions import MissingBucket
from moto.s3.models import s3_backends

from . import timing

log = logging.getLogger("moto_launcher.ecs")

FAULTS_FILE = os.environ.get("QA_TESTBED_ECS_FAULTS", "")
SCALE = float(os.environ.get("QA_TESTBED_ECS_TIME_SCALE", timing.SCALE))
# Pulling an image and starting its containers: about half a minute on AWS.
TASK_START_SECONDS = 30
RETRY_BACKOFF_SECONDS = 15
RETRY_BACKOFF_CAP_SECONDS = 27 * 60
TICK_SECONDS = 0.05
AUTHORITIES_DIR = os.environ.get("QA_TESTBED_AUTHORITIES_DIR", "")
STAND_IN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "qa_server_standin.py")
LOCK = threading.RLock()
SERVICES = []

# moto moves a described task on (RUNNING -> DEACTIVATING ...); here the scheduler moves them.
state_manager.set_transition(model_name="ecs::task", transition={"progression": "manual", "times": 1_000_000})


def fault_for(task_definition):
    """The fault the faults file sets for this task definition's tasks, if any."""
    if not FAULTS_FILE or not os.path.exists(FAULTS_FILE):
        return None
    try:
        with open(FAULTS_FILE) as file:
            faults = json.load(file)
    except (OSError, ValueError):
        return None
    names = [f"{task_definition.family}:{task_definition.revision}", task_definition.family]
    names += [c.get("name") for c in task_definition.container_definitions]
    return next((faults[name] for name in names if name in faults), None)


def circuit_breaker_threshold(desired):
    return min(200, max(3, math.ceil(0.5 * desired)))


def new_deployment(service, task_definition_arn):
    deployment_id = f"ecs-svc/{uuid.uuid4().int % 10**19}"
    return {
        "id": deployment_id,
        "status": "PRIMARY",
        "taskDefinition": task_definition_arn,
        "desiredCount": service.desired_count,
        "pendingCount": 0,
        "runningCount": 0,
        "failedTasks": 0,
        "createdAt": utcnow(),
        "updatedAt": utcnow(),
        "launchType": service.launch_type,
        "rolloutState": "IN_PROGRESS",
        "rolloutStateReason": f"ECS deployment {deployment_id} in progress.",
    }


def configure(service, properties):
    """The CloudFormation properties moto's ECS model drops: the circuit breaker."""
    breaker = (properties.get("DeploymentConfiguration") or {}).get("DeploymentCircuitBreaker") or {}
    with LOCK:
        service.qa_circuit_breaker = str(breaker.get("Enable", "false")).lower() == "true"
        service.qa_rollback = str(breaker.get("Rollback", "false")).lower() == "true"


original_create_service = EC2ContainerServiceBackend.create_service
original_update_service = EC2ContainerServiceBackend.update_service
original_delete_service = EC2ContainerServiceBackend.delete_service


def create_service(self, cluster_str, service_name, desired_count, task_definition_str=None, *args, **kwargs):
    with LOCK:
        service = original_create_service(
            self, cluster_str, service_name, desired_count, task_definition_str, *args, **kwargs
        )
        service.qa_backend = self
        service.qa_circuit_breaker = False
        service.qa_rollback = False
        service.qa_failed_deployments = set()
        service.qa_next_launch = {}
        service.running_count, service.pending_count = 0, 0
        service.deployments = [new_deployment(service, service.task_definition)] if service.task_definition else []
        SERVICES.append(service)
        return service


def update_service(self, service_properties):
    with LOCK:
        task_definition = service_properties.get("task_definition")
        force = service_properties.get("force_new_deployment")
        service = original_update_service(self, service_properties)
        running = [d for d in service.deployments if d["status"] != "INACTIVE"]
        service.running_count = sum(d["runningCount"] for d in running)
        service.pending_count = sum(d["pendingCount"] for d in running)
        if task_definition:
            service.task_definition = self.describe_task_definition(task_definition).arn
        primary = service.deployments[0] if service.deployments else None
        if primary is None or primary["taskDefinition"] != service.task_definition or force:
            for deployment in service.deployments:
                deployment["status"] = "ACTIVE"
            service.deployments.insert(0, new_deployment(service, service.task_definition))
        else:
            primary["desiredCount"] = service.desired_count
        return service


def delete_service(self, cluster_name, service_name, force):
    with LOCK:
        service = original_delete_service(self, cluster_name, service_name, force)
        for task in tasks_of(service):
            stop(task, "Service deleted", None)
        service.status = "INACTIVE"
        service.deployments = []
        if service in SERVICES:
            SERVICES.remove(service)
        return service


EC2ContainerServiceBackend.create_service = create_service
EC2ContainerServiceBackend.update_service = update_service
EC2ContainerServiceBackend.delete_service = delete_service


def tasks_of(service, deployment=None):
    tasks = service.qa_backend.tasks.get(service.cluster_name, {}).values()
    return [
        t
        for t in tasks
        if t.group == f"service:{service.name}" and (deployment is None or t.started_by == deployment["id"])
    ]


def write_container_logs(task, task_definition, lines):
    """What each container printed, in its awslogs stream, as the awslogs driver sends it."""
    _, _, _, region, account, _ = task_definition.arn.split(":", 5)
    backend = logs_backends[account][region]
    task_id = task.task_arn.rsplit("/", 1)[-1]
    now = int(time.time() * 1000)
    for container in task_definition.container_definitions:
        config = container.get("logConfiguration") or {}
        options = config.get("options") or {}
        group, prefix = options.get("awslogs-group"), options.get("awslogs-stream-prefix")
        if config.get("logDriver") != "awslogs" or not group or not prefix or group not in backend.groups:
            continue
        stream = f"{prefix}/{container.get('name')}/{task_id}"
        backend.ensure_log_stream(group, stream)
        backend.put_log_events(group, stream, [{"timestamp": now, "message": line} for line in lines])


def stop(task, reason, fault, task_definition=None):
    if task.last_status == "STOPPED":
        return
    task.last_status = "STOPPED"
    task.desired_status = "STOPPED"
    task.stopped_reason = reason
    task.stopped_at = utcnow()
    task.stop_code = "EssentialContainerExited" if fault else "ServiceSchedulerInitiated"
    for container in task.containers:
        container.last_status = "STOPPED"
        if fault:
            container.exit_code = container.exitCode = fault.get("exitCode", 1)
            container.reason = fault.get("reason") or None
            container.health_status = "UNHEALTHY"
    if fault and fault.get("logLines") and task_definition is not None:
        write_container_logs(task, task_definition, fault["logLines"])
    stand_in = getattr(task, "qa_stand_in", None)
    if stand_in is not None:
        stand_in.terminate()
        stand_in.wait(10)


def user_data(instance):
    data = instance.user_data
    if isinstance(data, Base64EncodedString):
        return data.decode()
    try:
        return base64.b64decode(data or "").decode()
    except (TypeError, ValueError):
        return str(data)


def register_instances(backend, cluster_name):
    """What the ECS agent of each of the cluster's instances does when it starts: register it
    with the cluster its user data names (ECS_CLUSTER in /etc/ecs/ecs.config)."""
    ec2 = ec2_backends[backend.account_id][backend.region_name]
    registered = {c.ec2_instance_id for c in backend.container_instances.get(cluster_name, {}).values()}
    joins = re.compile(rf"^ECS_CLUSTER={re.escape(cluster_name)}\s*$", re.MULTILINE)
    for instance in ec2.all_instances():
        if instance.id not in registered and instance.state == "running" and joins.search(user_data(instance)):
            backend.register_container_instance(cluster_name, instance.id)


def place(backend, task):
    """ECS's spread placement: the running instance with the fewest tasks."""
    ec2 = ec2_backends[backend.account_id][backend.region_name]
    candidates = [
        c
        for c in backend.container_instances.get(task.cluster_name, {}).values()
        if c.status == "ACTIVE" and ec2.get_instance(c.ec2_instance_id).state == "running"
    ]
    if not candidates:
        return
    live = [t for t in backend.tasks[task.cluster_name].values() if t.last_status != "STOPPED" and t is not task]
    chosen = min(candidates, key=lambda c: sum(t.container_instance_arn == c.container_instance_arn for t in live))
    task.container_instance_arn = chosen.container_instance_arn
    task.launch_type = "EC2"


def env_file(arn, account_id):
    """An S3 environment file's variables, read as ECS reads them: VARIABLE=VALUE lines, # comments,
    values as written (no quotes stripped)."""
    partition, path = arn.split(":")[1], arn.split(":::", 1)[-1]
    bucket, _, key = path.partition("/")
    try:
        found = s3_backends[account_id][partition].get_object(bucket, key)
    except MissingBucket:
        found = None
    variables = {}
    for line in found.value.decode().splitlines() if found else []:
        name, equals, value = line.partition("=")
        if equals and name.strip() and not line.startswith("#"):
            variables[name] = value
    return variables


def container_environment(container, account_id):
    """Its environment files top down, then its environment, which takes precedence (ECS
    developer guide, "Pass environment variables to a container")."""
    variables = {}
    for file in container.get("environmentFiles") or []:
        variables.update(env_file(file.get("value", ""), account_id))
    variables.update({v["name"]: v.get("value", "") for v in container.get("environment") or []})
    return variables


def log_file(task):
    """The stand-in's log beside the launcher's own, when that is a file (the bed's log folder)."""
    try:
        own = os.readlink("/proc/self/fd/1")
    except OSError:
        own = ""
    if not os.path.isfile(own):
        return open(os.devnull, "w")
    return open(os.path.join(os.path.dirname(own), f"qa-server-{task.id}.log"), "a")


def serves_authorities(container):
    paths = [str(m.get("containerPath", "")).rstrip("/") for m in container.get("mountPoints") or []]
    return any(path.endswith("config/authorities") for path in paths)


def start_containers(backend, task):
    """A placed bridge-mode task's first container gets a dynamic host port for its first port
    mapping (hostPort 0 or none); the app container (it mounts config/authorities) gets a
    qa_server stand-in listening there."""
    if not task.container_instance_arn:
        return
    definition = backend.describe_task_definition(task.task_definition_arn)
    container = definition.container_definitions[0]
    mapping = (container.get("portMappings") or [{}])[0]
    if definition.network_mode != "bridge" or "containerPort" not in mapping or int(mapping.get("hostPort") or 0):
        return
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        task.containers[0].network_bindings = [
            {
                "bindIP": "0.0.0.0",
                "containerPort": int(mapping["containerPort"]),
                "hostPort": listener.getsockname()[1],
                "protocol": "tcp",
            }
        ]
        if AUTHORITIES_DIR and serves_authorities(container):
            environment = {"PATH": os.environ.get("PATH", os.defpath)}
            environment.update(container_environment(container, backend.account_id))
            with log_file(task) as log:
                task.qa_stand_in = subprocess.Popen(
                    [sys.executable, STAND_IN, str(listener.fileno()), AUTHORITIES_DIR, str(os.getpid())],
                    env=environment,
                    pass_fds=[listener.fileno()],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )


def launch(service, deployment):
    backend = service.qa_backend
    task = backend.run_task(
        service.cluster_name,
        deployment["taskDefinition"],
        1,
        None,
        started_by=deployment["id"],
        tags=None,
        launch_type="FARGATE",  # moto's EC2 placement fails without container instances: place() places
        group=f"service:{service.name}",
    )[0]
    register_instances(backend, service.cluster_name)
    place(backend, task)
    task.last_status = "PENDING"
    task.qa_ready_at = time.monotonic() + TASK_START_SECONDS * SCALE
    for container in task.containers:
        container.last_status = "PENDING"


def advance(service):
    """One scheduler step for one service."""
    if not service.deployments or service.status != "ACTIVE":
        return
    backend = service.qa_backend
    primary = service.deployments[0]
    task_definition = backend.describe_task_definition(primary["taskDefinition"])
    for deployment in service.deployments:
        for task in tasks_of(service, deployment):
            if task.last_status == "PENDING" and time.monotonic() >= task.qa_ready_at:
                fault = fault_for(task_definition) if deployment is primary else None
                if fault:
                    stop(task, fault.get("stoppedReason", "Essential container in task exited"), fault, task_definition)
                    deployment["failedTasks"] += 1
                    backoff = min(RETRY_BACKOFF_CAP_SECONDS, RETRY_BACKOFF_SECONDS * 2 ** (deployment["failedTasks"] - 1))
                    service.qa_next_launch[deployment["id"]] = time.monotonic() + backoff * SCALE
                else:
                    task.last_status = "RUNNING"
                    for container in task.containers:
                        container.last_status = "RUNNING"
                    start_containers(backend, task)
    if primary["rolloutState"] == "IN_PROGRESS":
        live = [t for t in tasks_of(service, primary) if t.last_status in ("PENDING", "RUNNING")]
        if time.monotonic() >= service.qa_next_launch.get(primary["id"], 0):
            for _ in range(service.desired_count - len(live)):
                launch(service, primary)
        if service.qa_circuit_breaker and primary["failedTasks"] >= circuit_breaker_threshold(service.desired_count):
            primary["rolloutState"] = "FAILED"
            primary["rolloutStateReason"] = "ECS deployment circuit breaker: tasks failed to start."
            service.qa_failed_deployments.add(primary["id"])
            for task in tasks_of(service, primary):
                stop(task, "Scaling activity initiated by (deployment circuit breaker)", None)
            if service.qa_rollback and len(service.deployments) > 1:
                service.deployments.pop(0)
                service.deployments[0]["status"] = "PRIMARY"
                service.task_definition = service.deployments[0]["taskDefinition"]
        running = [t for t in tasks_of(service, primary) if t.last_status == "RUNNING"]
        if len(running) >= service.desired_count and primary["rolloutState"] == "IN_PROGRESS":
            for old in service.deployments[1:]:
                for task in tasks_of(service, old):
                    stop(task, f"Scaling activity initiated by (deployment {primary['id']})", None)
            del service.deployments[1:]
            primary["rolloutState"] = "COMPLETED"
            primary["rolloutStateReason"] = f"ECS deployment {primary['id']} completed."
    for deployment in service.deployments:
        tasks = tasks_of(service, deployment)
        deployment["runningCount"] = sum(t.last_status == "RUNNING" for t in tasks)
        deployment["pendingCount"] = sum(t.last_status == "PENDING" for t in tasks)
        deployment["desiredCount"] = service.desired_count if deployment is primary else 0
    service.running_count = sum(d["runningCount"] for d in service.deployments)
    service.pending_count = sum(d["pendingCount"] for d in service.deployments)


def scheduler():
    while True:
        with LOCK:
            for service in list(SERVICES):
                try:
                    advance(service)
                except Exception:
                    log.exception("ECS scheduler: service %s", service.name)
        time.sleep(TICK_SECONDS)


def primary_deployment_id(service):
    with LOCK:
        return service.deployments[0]["id"] if service.deployments else None


def stability(service, deployment_id):
    """CloudFormation's judgement of the deployment it started: ("stable", ""), ("failed", reason) or
    (None, "") while it is neither."""
    with LOCK:
        if deployment_id in service.qa_failed_deployments:
            return "failed", circuit_breaker_message()
        if not service.deployments:
            return "stable", ""
        primary = service.deployments[0]
        if (
            len(service.deployments) == 1
            and service.running_count == service.desired_count
            and primary["rolloutState"] == "COMPLETED"
        ):
            return "stable", ""
        return None, ""


def circuit_breaker_message():
    return (
        "Resource handler returned message: \"Error occurred during operation 'ECS Deployment Circuit Breaker "
        f"was triggered'.\" (RequestToken: {uuid.uuid4()}, HandlerErrorCode: GeneralServiceException)"
    )


timing.in_background(scheduler)
