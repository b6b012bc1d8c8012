"""Lambda's event source mapping for an SQS queue: a poller that batches as Lambda does.

moto invokes the function inside each SendMessage, once per message, ignoring the batching
window, partial batch responses and MaximumConcurrency, and makes a failed batch visible at once.
Here one poller per mapping follows the Lambda developer guide:
- "Using Lambda with Amazon SQS": "Lambda polls the queue and invokes your Lambda function
  synchronously with an event that contains queue messages. Lambda reads messages in batches and
  invokes your function once for each batch"; the records are those of its example event. While
  a batch is gathered and the function runs, its messages are in flight (invisible).
- "How Lambda processes records from stream and queue-based event sources" (Batching behavior):
  Lambda gathers records until the batching window (MaximumBatchingWindowInSeconds, default 0)
  expires, the batch size is reached, or the payload reaches 6 MB, then invokes the function
  once. The window starts when the poller receives the batch's first record, which is also when
  the previous batch was handed over if messages were waiting. With no window, one receive of up
  to BatchSize (at most 10) messages is the batch.
- "Handling errors for an SQS event source in Lambda": a function error returns the whole batch
  to the queue, visible again once the queue's visibility timeout runs out. With
  ``FunctionResponseTypes: [ReportBatchItemFailures]`` the answer's
  ``batchItemFailures[].itemIdentifier`` (message ids) return and the rest are deleted; an empty
  or null list or answer is a complete success; invalid JSON, or an item identifier that is
  empty, null, under another key or not in the batch, is a complete failure. Without it, any
  answer but an error deletes the batch. The queue's RedrivePolicy is moto's: a message received
  more than maxReceiveCount times moves to the dead-letter queue at its next receive.
- "Configuring maximum concurrency for Amazon SQS event sources": at most
  ``ScalingConfig.MaximumConcurrency`` invocations at once; the poller reads no more messages
  while that many run (without it, up to 1,000 here).
- CreateEventSourceMapping's checks, which fail the stack: "When you set BatchSize to a value
  greater than 10, you must set MaximumBatchingWindowInSeconds to at least 1" (Lambda API
  reference), and the queue's visibility timeout may not be shorter than the function's timeout
  (Lambda's message for it).
A disabled mapping reads nothing; a deleted one (its stack deleted) stops, and what it gathered
returns to the queue.

Timing: the batching window is in real seconds, not scaled by ``QA_TESTBED_TIME_SCALE``: it is
measured against the sender's pace (an ``aws s3 sync``'s burst runs in real time here), so scaling
it would split a burst AWS would batch. The visibility timeout a failed message waits is an AWS
wait like Lambda's retry delays and is scaled (``timing``), counted from the function's answer
(the function itself runs in real time here, so counting from the receive would be meaningless).

What each mapping did is at ``GET /moto-api/qa-testbed/event-source-mappings`` (see ``report``)
and in the launcher log, one line per invocation.
"""

import json
import logging
import threading
import time

from moto.awslambda.exceptions import InvalidParameterValueException
from moto.awslambda.models import LambdaBackend
from moto.awslambda.utils import get_backend as get_lambda_backend
from moto.core.utils import unix_time_millis
from moto.moto_api._internal import urls as moto_api_urls
from moto.sqs import models as sqs_models
from moto.sqs.models import sqs_backends

from . import lambda_invoke, timing

log = logging.getLogger("moto_launcher.sqs")

PAYLOAD_LIMIT = 6 * 1024 * 1024  # synchronous invocation's payload limit
RECEIVE_LIMIT = 10  # messages one ReceiveMessage returns
DEFAULT_CONCURRENCY = 1000  # MaximumConcurrency's highest value
POLL_SECONDS = 0.02
# Messages stay in flight while a batch is gathered and the function runs.
HOLD_SECONDS = lambda_invoke.LONGEST_INVOCATION_SECONDS + 300

POLLERS = {}  # mapping UUID -> Poller


def queue_by_arn(account_id, region_name, arn):
    for queue in sqs_backends[account_id][region_name].queues.values():
        if queue.queue_arn == arn:
            return queue
    return None


def lambda_attribute(value):
    """An SQS message attribute as Lambda's records show it."""
    shown = {"stringListValues": [], "binaryListValues": [], "dataType": value["DataType"]}
    if value.get("StringValue") is not None:
        shown["stringValue"] = value["StringValue"]
    if value.get("BinaryValue") is not None:
        shown["binaryValue"] = value["BinaryValue"]
    return shown


def record(message, queue):
    attributes = {
        "ApproximateReceiveCount": str(message.approximate_receive_count),
        "SentTimestamp": str(message.sent_timestamp),
        "SenderId": message.sender_id,
        "ApproximateFirstReceiveTimestamp": str(message.approximate_first_receive_timestamp),
    }
    if queue.fifo_queue:
        attributes.update(
            SequenceNumber=message.sequence_number,
            MessageGroupId=message.group_id,
            MessageDeduplicationId=message.deduplication_id,
        )
    return {
        "messageId": message.id,
        "receiptHandle": message.receipt_handle,
        "body": message.body,
        "attributes": attributes,
        "messageAttributes": {name: lambda_attribute(v) for name, v in message.message_attributes.items()},
        "md5OfBody": message.body_md5,
        "eventSource": "aws:sqs",
        "eventSourceARN": queue.queue_arn,
        "awsRegion": queue.region,
    }


def failed_ids(records, payload, errored, reports_item_failures):
    """The message ids that go back to the queue, per Lambda's rules for the answer."""
    every_id = {r["messageId"] for r in records}
    if errored:
        return every_id
    if not reports_item_failures:
        return set()
    try:
        answer = json.loads(payload) if payload.strip() else None
    except ValueError:
        return every_id
    if answer is None or answer == {}:
        return set()
    if not isinstance(answer, dict):
        return every_id
    failures = answer.get("batchItemFailures")
    if not failures:
        return set()
    ids = set()
    for failure in failures if isinstance(failures, list) else [failures]:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in every_id:
            return every_id
        ids.add(identifier)
    return ids


class Poller:
    """Polls one mapping's queue and invokes its function with each batch."""

    def __init__(self, mapping, invoke=None):
        self.mapping = mapping
        self.account_id, self.region_name = mapping.account_id, mapping.region
        self.invoke = invoke or lambda_invoke.invoke_emulator
        self.running = 0
        self.changed = threading.Condition()
        self.invocations = []  # what ``report`` shows, one dict per invocation
        self.stopped = False

    # ------------------------------------------------ the mapping, as it is now

    def queue(self):
        return queue_by_arn(self.account_id, self.region_name, self.mapping.event_source_arn)

    def active(self):
        backend = get_lambda_backend(self.account_id, self.region_name)
        return backend.get_event_source_mapping(self.mapping.uuid) is self.mapping and self.queue() is not None

    def enabled(self):
        return bool(self.mapping.enabled)

    def window(self):
        return float(self.mapping.max_batch_window or 0)

    def concurrency(self):
        scaling = self.mapping.scaling_config or {}
        return int(scaling.get("MaximumConcurrency") or DEFAULT_CONCURRENCY)

    def reports_item_failures(self):
        return "ReportBatchItemFailures" in (self.mapping.function_response_types or [])

    # ------------------------------------------------ the queue's messages

    def receive(self, queue, count):
        backend = sqs_backends[self.account_id][self.region_name]
        with queue._messages_lock:
            messages = backend.receive_message(queue.name, count, 0, HOLD_SECONDS, message_attribute_names=["All"])
        return [record(m, queue) for m in messages]

    def settle(self, queue, records, failed, visible_in):
        """Deletes the records not in `failed`; the failed ones are visible again in `visible_in` s."""
        visible_at = time.time() * 1000 + visible_in * 1000
        with queue._messages_lock:
            for r in records:
                if r["messageId"] not in failed:
                    try:
                        queue.delete_message(r["receiptHandle"])
                    except Exception:  # gone already (the queue purged)
                        pass
                    continue
                for message in queue._messages:
                    if message.had_receipt_handle(r["receiptHandle"]):
                        message.visible_at = visible_at

    def release(self, records):
        queue = self.queue()
        if queue is not None and records:
            self.settle(queue, records, {r["messageId"] for r in records}, 0)

    # ------------------------------------------------ the poller

    def run(self):
        carried = []
        while self.active():
            try:
                carried = self.poll(carried)
            except Exception:  # a poller that dies would leave the queue unread without a word
                log.exception("event source mapping %s: polling failed", self.mapping.uuid)
                time.sleep(POLL_SECONDS)
        self.release(carried)
        self.stopped = True
        log.info("event source mapping %s stopped", self.mapping.uuid)

    def poll(self, carried):
        """Gathers one batch and starts its invocation when a slot is free; what is carried over."""
        if not self.enabled():
            self.release(carried)
            time.sleep(POLL_SECONDS)
            return []
        with self.changed:
            self.changed.wait_for(lambda: self.running < self.concurrency(), timeout=POLL_SECONDS * 10)
            if self.running >= self.concurrency():
                return carried
        batch, carried = self.gather(carried)
        if batch:
            with self.changed:
                self.running += 1
            timing.in_background(self.invoke_batch, batch)
        return carried

    def gather(self, carried):
        """(the batch, records received beyond its payload limit for the next one)."""
        records, size = [], 0
        deadline = None
        pending = list(carried)
        while True:
            if not (self.active() and self.enabled()):
                self.release(records + pending)
                return [], []
            room = int(self.mapping.batch_size) - len(records)
            if room <= 0 or (deadline is not None and time.monotonic() >= deadline):
                return records, pending
            queue = self.queue()
            if queue is None:
                return [], []
            received = pending or self.receive(queue, min(RECEIVE_LIMIT, room))
            pending = []
            for i, r in enumerate(received):
                r_size = len(json.dumps(r)) + 2
                if records and size + r_size > PAYLOAD_LIMIT:
                    return records, received[i:]
                records.append(r)
                size += r_size
            if records and deadline is None:
                deadline = time.monotonic() + self.window()
            if not received:
                time.sleep(POLL_SECONDS if deadline is None else max(0, min(POLL_SECONDS, deadline - time.monotonic())))

    def invoke_batch(self, records):
        started = time.time()
        try:
            function = get_lambda_backend(self.account_id, self.region_name).get_function(self.mapping.function_arn)
            payload, errored = self.invoke(function, {"Records": records})
        except Exception as error:
            log.exception("event source mapping %s: invocation failed", self.mapping.uuid)
            payload, errored = json.dumps({"errorMessage": str(error)}), True
        failed = failed_ids(records, payload, errored, self.reports_item_failures())
        queue = self.queue()
        if queue is not None:
            self.settle(queue, records, failed, timing.scaled(int(float(queue.visibility_timeout))))
        with self.changed:
            self.invocations.append(
                {"Records": len(records), "Failed": len(failed), "FunctionError": errored, "StartedAt": started}
            )
            number = len(self.invocations)
            self.running -= 1
            self.changed.notify_all()
        log.info(
            "event source mapping %s: invocation %d of %s with %d records, %d back to the queue%s",
            self.mapping.uuid, number, self.mapping.function_arn, len(records), len(failed),
            " (function error)" if errored else "",
        )

    def report(self):
        with self.changed:
            invocations = list(self.invocations)
        return {
            "FunctionArn": self.mapping.function_arn,
            "EventSourceArn": self.mapping.event_source_arn,
            "State": "Deleted" if self.stopped else ("Enabled" if self.enabled() else "Disabled"),
            "Invocations": invocations,
        }


# ---------------------------------------------------------------- moto's Lambda


original_create_event_source_mapping = LambdaBackend.create_event_source_mapping


def as_bool(spec):
    """A template's "false" (a parameter's value) is false, as Lambda reads it."""
    if isinstance(spec.get("Enabled"), str):
        spec["Enabled"] = spec["Enabled"].lower() == "true"
    return spec


def create_event_source_mapping(self, spec):
    as_bool(spec)
    queue = queue_by_arn(self.account_id, self.region_name, spec.get("EventSourceArn", ""))
    if queue is not None:
        check(spec, queue, self.get_function(spec["FunctionName"]))
    mapping = original_create_event_source_mapping(self, spec)
    if queue is not None:
        queue.lambda_event_source_mappings.pop(mapping.function_arn, None)  # moto's invoke-on-send
        poller = Poller(mapping)
        POLLERS[mapping.uuid] = poller
        timing.in_background(poller.run)
    return mapping


def check(spec, queue, function):
    batch_size = int(spec.get("BatchSize") or 10)
    window = int(spec.get("MaximumBatchingWindowInSeconds") or 0)
    if batch_size > 10 and window < 1:
        raise InvalidParameterValueException(
            "Maximum batch window in seconds must be greater than 0 if maximum batch size is greater than 10"
        )
    visibility, function_timeout = int(float(queue.visibility_timeout)), int(function.timeout)
    if visibility < function_timeout:
        raise InvalidParameterValueException(
            f"Queue visibility timeout: {visibility} seconds is less than Function timeout: {function_timeout} seconds"
        )


original_update_event_source_mapping = LambdaBackend.update_event_source_mapping


def update_event_source_mapping(self, uuid, spec):
    return original_update_event_source_mapping(self, uuid, as_bool(spec))


LambdaBackend.create_event_source_mapping = create_event_source_mapping
LambdaBackend.update_event_source_mapping = update_event_source_mapping


def fast_unix_time_millis(dt=None):
    return unix_time_millis(dt) if dt is not None else time.time() * 1000


# moto's SendMessage counts the queue's visible messages, each asking the time through datetime:
# a burst of 200 took seconds here, long enough to straddle a batching window it fits on AWS.
sqs_models.unix_time_millis = fast_unix_time_millis


def report(request, full_url, headers):
    """``{mapping UUID: {FunctionArn, EventSourceArn, State, Invocations: [{Records, Failed,
    FunctionError, StartedAt}]}}`` for every SQS mapping the launcher has run."""
    body = {uuid: poller.report() for uuid, poller in list(POLLERS.items())}
    return 200, {"Content-Type": "application/json"}, json.dumps(body)


moto_api_urls.url_paths["{0}/moto-api/qa-testbed/event-source-mappings"] = report
