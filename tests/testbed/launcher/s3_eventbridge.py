"""S3 object changes on EventBridge's default bus, delivered to a rule's SQS queue as AWS does.

- A template bucket's ``NotificationConfiguration.EventBridgeConfiguration.EventBridgeEnabled``
  turns the bucket's EventBridge notifications on (moto's CloudFormation drops the property).
- "Amazon S3 can send events to Amazon EventBridge whenever certain events happen in your bucket
  ... After EventBridge is enabled, all events below are sent" (S3 user guide, "Using
  EventBridge"): "Object Created" with ``reason`` PutObject, POST Object, CopyObject or
  CompleteMultipartUpload; "Object Deleted" with ``reason`` DeleteObject and ``deletion-type``
  "Permanently Deleted" (an unversioned object) or "Delete Marker Created" (a versioned one).
  Each event has the fields and ``detail`` of S3 user guide, "EventBridge event message
  structure": a UUID ``id``, the time, ``detail.object`` with ``key`` (not URL-encoded),
  ``size`` and ``etag`` (created), ``version-id`` (versioned buckets) and ``sequencer``. moto
  sends a fixed ``id``, ``eTag``, a ``reason`` such as "ObjectCreated", nothing at all for a
  delete marker (so ``aws s3 rm`` on a versioned bucket went unseen), two Object Created for one
  multipart upload, and to every bus's rules, disabled ones too. Here: S3's events go to the
  default bus only, and only its enabled rules match them.
- A rule's SQS target receives the event only if the queue's policy lets
  ``events.amazonaws.com`` send it (EventBridge user guide, "Using resource-based policies for
  Amazon EventBridge", Amazon SQS permissions), honouring an ``aws:SourceArn`` condition on the
  rule's ARN; otherwise EventBridge cannot deliver and nothing arrives. moto delivers regardless,
  and its CloudFormation skips ``AWS::SQS::QueuePolicy``, which is played here.
"""

import fnmatch
import json
import logging
import random
import string
import threading
import time
import uuid

from moto.core.common_models import CloudFormationModel
from moto.core.utils import unix_time
from moto.events.models import Rule, events_backends
from moto.s3 import notifications
from moto.s3.models import FakeBucket, S3Backend
from moto.sqs.models import sqs_backends

log = logging.getLogger("moto_launcher.s3_eventbridge")

EMPTY_ETAG = "d41d8cd98f00b204e9800998ecf8427e"  # a delete marker's: the MD5 of no bytes
CREATED = {
    notifications.S3NotificationEvent.OBJECT_CREATED_PUT_EVENT: "PutObject",
    notifications.S3NotificationEvent.OBJECT_CREATED_POST_EVENT: "POST Object",
    notifications.S3NotificationEvent.OBJECT_CREATED_COPY_EVENT: "CopyObject",
    notifications.S3NotificationEvent.OBJECT_CREATED_COMPLETE_MULTIPART_UPLOAD_EVENT: "CompleteMultipartUpload",
}
DELETED = {
    notifications.S3NotificationEvent.OBJECT_REMOVED_DELETE_EVENT: "Permanently Deleted",
    notifications.S3NotificationEvent.OBJECT_REMOVED_DELETE_MARKER_CREATED_EVENT: "Delete Marker Created",
}

_sequence = {"last": 0}
_sequence_lock = threading.Lock()
_completing = threading.local()


def sequencer():
    """Increasing per key, as S3's is (hexadecimal)."""
    with _sequence_lock:
        _sequence["last"] = max(_sequence["last"] + 1, time.time_ns())
        return format(_sequence["last"], "016X")


def s3_event(account_id, bucket, event_name, key):
    event_name = str(getattr(event_name, "value", event_name))
    obj = {"key": key.name}
    if event_name in CREATED:
        detail_type, extra = "Object Created", {"reason": CREATED[event_name]}
        obj.update(size=key.size, etag=key.etag.replace('"', ""))
    elif event_name in DELETED:
        detail_type, extra = "Object Deleted", {"reason": "DeleteObject", "deletion-type": DELETED[event_name]}
        etag = getattr(key, "etag", None)
        obj["etag"] = etag.replace('"', "") if etag else EMPTY_ETAG
    else:
        detail_type, extra = notifications._detail_type(event_name), {}
    version_id = getattr(key, "version_id", None)
    if version_id not in (None, "null"):
        obj["version-id"] = version_id
    obj["sequencer"] = sequencer()
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": "aws.s3",
        "account": account_id,
        # moto's SQS delivery writes it as ISO 8601 ("2021-11-12T00:00:00Z").
        "time": unix_time(),
        "region": bucket.region_name,
        "resources": [bucket.arn],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket.name},
            "object": obj,
            "request-id": "".join(random.choices(string.ascii_uppercase + string.digits, k=16)),
            "requester": account_id,
            "source-ip-address": "127.0.0.1",
            **extra,
        },
    }


def send_event_bridge_message(account_id, bucket, event_name, key):
    """In place of moto's: the documented event, to the default bus's enabled rules."""
    try:
        event = s3_event(account_id, bucket, event_name, key)
        bus = events_backends[account_id][bucket.region_name].event_buses.get("default")
        for rule in list(bus.rules.values()) if bus else []:
            if rule.state == "ENABLED":
                rule.send_to_targets(event, transform_input=False)
    except Exception:  # S3 answers the request whatever happens to its notification
        log.exception("S3 event for %s/%s not sent", bucket.name, getattr(key, "name", "?"))


notifications._send_event_bridge_message = send_event_bridge_message

original_send_event = notifications.send_event


def send_event(account_id, event_name, bucket, key):
    # Completing a multipart upload stores the object through put_object (and its tags): S3
    # reports only the CompleteMultipartUpload.
    if getattr(_completing, "upload", False) and (
        event_name != notifications.S3NotificationEvent.OBJECT_CREATED_COMPLETE_MULTIPART_UPLOAD_EVENT
    ):
        return
    original_send_event(account_id, event_name, bucket, key)


notifications.send_event = send_event

original_complete_multipart_upload = S3Backend.complete_multipart_upload
original_set_delete_marker = S3Backend._set_delete_marker


def complete_multipart_upload(self, *args, **kwargs):
    _completing.upload = True
    try:
        return original_complete_multipart_upload(self, *args, **kwargs)
    finally:
        _completing.upload = False


def set_delete_marker(self, bucket_name, key_name):
    marker = original_set_delete_marker(self, bucket_name, key_name)
    bucket = self.get_bucket(bucket_name)
    configuration = bucket.notification_configuration
    if configuration is not None and configuration.event_bridge is not None:
        send_event_bridge_message(
            self.account_id, bucket, notifications.S3NotificationEvent.OBJECT_REMOVED_DELETE_MARKER_CREATED_EVENT, marker
        )
    return marker


S3Backend.complete_multipart_upload = complete_multipart_upload
S3Backend._set_delete_marker = set_delete_marker


# ---------------------------------------------------------------- the template's bucket


def apply_notification_configuration(bucket, properties):
    """The template's EventBridge setting (S3 user guide, "Enabling Amazon EventBridge")."""
    enabled = (properties.get("NotificationConfiguration") or {}).get("EventBridgeConfiguration") or {}
    if str(enabled.get("EventBridgeEnabled", "false")).lower() == "true":
        bucket.set_notification_configuration({"EventBridgeConfiguration": {}})
    elif bucket.notification_configuration is not None:
        bucket.notification_configuration.event_bridge = None


original_create_bucket = FakeBucket.create_from_cloudformation_json.__func__
original_update_bucket = FakeBucket.update_from_cloudformation_json.__func__


@classmethod
def create_bucket(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    bucket = original_create_bucket(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
    apply_notification_configuration(bucket, cloudformation_json.get("Properties", {}))
    return bucket


@classmethod
def update_bucket(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name):
    bucket = original_update_bucket(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name)
    apply_notification_configuration(bucket, cloudformation_json.get("Properties", {}))
    return bucket


FakeBucket.create_from_cloudformation_json = create_bucket
FakeBucket.update_from_cloudformation_json = update_bucket


# ---------------------------------------------------------------- queue policies


def as_list(value):
    return value if isinstance(value, list) else [value]


def allows_eventbridge(policy, queue_arn, rule_arn):
    """Whether a queue policy lets EventBridge send this rule's events (Allow statements only)."""
    for statement in as_list((policy or {}).get("Statement", [])):
        if statement.get("Effect") != "Allow":
            continue
        principal = statement.get("Principal")
        if principal != "*" and not (
            isinstance(principal, dict)
            and ("events.amazonaws.com" in as_list(principal.get("Service", [])) or principal.get("AWS") == "*")
        ):
            continue
        if not any(fnmatch.fnmatch("sqs:sendmessage", str(a).lower()) for a in as_list(statement.get("Action", []))):
            continue
        if not any(fnmatch.fnmatch(queue_arn, r) for r in as_list(statement.get("Resource", "*"))):
            continue
        if all(condition_holds(op, values, rule_arn) for op, values in (statement.get("Condition") or {}).items()):
            return True
    return False


def condition_holds(operator, values, rule_arn):
    for key, expected in values.items():
        if key.lower() == "aws:sourcearn":
            like = operator.endswith("Like")
            if not any(fnmatch.fnmatch(rule_arn, e) if like else rule_arn == e for e in as_list(expected)):
                return False
    return True


original_send_to_sqs_queue = Rule._send_to_sqs_queue


def send_to_sqs_queue(self, resource_id, event, group_id=None):
    queue = sqs_backends[self.account_id][self.region_name].queues.get(resource_id)
    if queue is None or not allows_eventbridge(queue._policy_json, queue.queue_arn, self.arn):
        log.warning("rule %s: queue %s's policy does not let events.amazonaws.com send; not delivered", self.arn, resource_id)
        return
    original_send_to_sqs_queue(self, resource_id, event, group_id)


Rule._send_to_sqs_queue = send_to_sqs_queue


class QueuePolicy(CloudFormationModel):
    """AWS::SQS::QueuePolicy: the policy document on each queue (by URL) in ``Queues``."""

    __module__ = "moto.sqs.models"  # moto files its models under the service in the module name

    def __init__(self, account_id, region_name, queue_urls):
        self.account_id, self.region_name, self.queue_urls = account_id, region_name, queue_urls
        self.id = f"qp-{uuid.uuid4().hex[:12]}"

    @staticmethod
    def cloudformation_type():
        return "AWS::SQS::QueuePolicy"

    @staticmethod
    def cloudformation_name_type():
        return ""

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        properties = cloudformation_json["Properties"]
        policy = cls(account_id, region_name, as_list(properties["Queues"]))
        policy.apply(properties["PolicyDocument"])
        return policy

    @classmethod
    def update_from_cloudformation_json(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name):
        original_resource.apply(None)
        properties = cloudformation_json["Properties"]
        original_resource.queue_urls = as_list(properties["Queues"])
        original_resource.apply(properties["PolicyDocument"])
        return original_resource

    def apply(self, document):
        backend = sqs_backends[self.account_id][self.region_name]
        for url in self.queue_urls:
            queue = backend.queues.get(str(url).rstrip("/").split("/")[-1])
            if queue is not None:
                queue.policy = json.dumps(document) if document else None

    @property
    def physical_resource_id(self):
        return self.id

    def delete(self, account_id, region_name):
        self.apply(None)
