//! The fault matrix, end to end: the real Lambda binary (built with the `fault-injection`
//! feature, which adds `Custom::TestFault`) under the cargo-lambda runtime emulator, each event
//! carrying a real pre-signed ResponseURL on moto's S3. Every request must end in exactly one
//! stored answer of at most 4096 bytes, with a reason that says what happened.

use std::time::{Duration, Instant};

use qa_lookup_testbed::{Event, FunctionOptions, ScriptedEndpoint, StoredResponse, TestBed};
use serde_json::json;

const FUNCTION: &str = env!("CARGO_BIN_EXE_custom-resources");
const TEST_FAULT: &str = "Custom::TestFault";

async fn start(timeout: Duration) -> TestBed {
    TestBed::start(FunctionOptions::new(FUNCTION).timeout(timeout).env("CFN_DEADLINE_MARGIN_SECONDS", "2")).await
}

/// Exactly one answer, within CloudFormation's size limit, and the ResponseURL's signature
/// nowhere in the function's log.
async fn one_answer(bed: &TestBed, event: &Event) -> StoredResponse {
    let stored = bed.stored_response(event).await;
    assert_eq!(stored.versions, 1, "expected exactly one answer, found {}", stored.versions);
    assert!(stored.bytes.len() <= 4096, "answer is {} bytes", stored.bytes.len());
    assert_eq!(stored.json["RequestId"], event.body["RequestId"]);
    assert_eq!(stored.json["LogicalResourceId"], event.body["LogicalResourceId"]);
    assert_eq!(stored.json["StackId"], event.body["StackId"]);
    assert!(!stored.physical_id().is_empty() && stored.physical_id().len() <= 1024);
    let logs = bed.function.logs_after_request(event.body["RequestId"].as_str().unwrap_or_default()).await;
    let signature = event.signature();
    assert!(!signature.is_empty());
    assert!(!logs.contains(&signature), "the ResponseURL's signature reached the log:\n{logs}");
    stored
}

#[tokio::test(flavor = "multi_thread")]
async fn create_update_delete_succeed_with_stable_physical_id_and_string_typed_properties() {
    let bed = start(Duration::from_secs(30)).await;
    let properties = json!({"Behaviour": "Succeed", "Count": "30", "Enabled": "true"});
    let create = bed.create(TEST_FAULT, "Probe", properties.clone()).await;
    bed.invoke(&create).await;
    let created = one_answer(&bed, &create).await;
    assert_eq!(created.status(), "SUCCESS", "{}", created.json);
    assert_eq!(created.json["Data"], json!({"Count": "30", "Enabled": "true"}));

    let updated_properties = json!({"Behaviour": "Succeed", "Count": 31});
    let update = bed.update(TEST_FAULT, "Probe", created.physical_id(), updated_properties.clone(), properties).await;
    bed.invoke(&update).await;
    let updated = one_answer(&bed, &update).await;
    assert_eq!(updated.status(), "SUCCESS", "{}", updated.json);
    assert_eq!(updated.physical_id(), created.physical_id(), "an Update must not ask for a replacement");

    let delete = bed.delete(TEST_FAULT, "Probe", created.physical_id(), updated_properties).await;
    bed.invoke(&delete).await;
    let deleted = one_answer(&bed, &delete).await;
    assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.json);
    assert_eq!(deleted.physical_id(), created.physical_id());

    let answered = |logs: &str| logs.lines().filter(|l| l.contains("answered CloudFormation")).count();
    let logs = bed.function.logs_once(|logs| answered(logs) >= 3).await;
    let summary = logs.lines().filter(|l| l.contains("answered CloudFormation")).collect::<Vec<_>>();
    assert_eq!(summary.len(), 3, "one log line per request:\n{logs}");
    for field in [
        "\"request_type\":\"Create\"",
        "\"logical_id\":\"Probe\"",
        "\"resource_type\":\"Custom::TestFault\"",
        "\"outcome\":\"SUCCESS\"",
        "\"duration_ms\":",
    ] {
        assert!(summary[0].contains(field), "{field} missing from {}", summary[0]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn handler_error_answers_failed_with_its_reason_and_a_log_pointer() {
    let bed = start(Duration::from_secs(30)).await;
    let create = bed.create(TEST_FAULT, "Broken", json!({"Behaviour": "Fail"})).await;
    bed.invoke(&create).await;
    let answer = one_answer(&bed, &create).await;
    assert_eq!(answer.status(), "FAILED");
    assert!(
        answer.reason().starts_with("Custom::TestFault Broken: asked to fail — expected Behaviour Succeed, found Fail"),
        "{}",
        answer.reason()
    );
    assert!(
        answer.reason().contains("qa-lookup-custom-resources stream 2026/11/25/[$LATEST]testbed"),
        "{}",
        answer.reason()
    );
    assert!(answer.physical_id().starts_with("never-created:"), "a failed Create answers a never-created id");
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_delivery_of_one_request_gives_the_same_answer() {
    let bed = start(Duration::from_secs(30)).await;
    let create = bed.create(TEST_FAULT, "Twice", json!({"Behaviour": "Succeed"})).await;
    bed.invoke(&create).await;
    let first = bed.stored_response(&create).await;
    bed.invoke(&create).await;
    let second = bed.stored_response(&create).await;
    assert_eq!(second.versions, 2, "each delivery is answered once");
    assert_eq!(first.json, second.json, "the same request gives the same answer");
}

#[tokio::test(flavor = "multi_thread")]
async fn panic_in_the_handler_answers_failed_internal_error_with_details_in_the_log() {
    let bed = start(Duration::from_secs(30)).await;
    let create = bed.create(TEST_FAULT, "Crashes", json!({"Behaviour": "Panic"})).await;
    bed.invoke(&create).await;
    let answer = one_answer(&bed, &create).await;
    assert_eq!(answer.status(), "FAILED");
    assert!(answer.reason().contains("internal error"), "{}", answer.reason());
    let logs = bed.function.logs_once(|logs| logs.contains("Custom::TestFault asked to panic")).await;
    assert!(logs.contains("Custom::TestFault asked to panic"), "the panic's detail is logged:\n{logs}");

    // The function survived the panic and serves the next request.
    let next = bed.create(TEST_FAULT, "After", json!({"Behaviour": "Succeed"})).await;
    bed.invoke(&next).await;
    assert_eq!(one_answer(&bed, &next).await.status(), "SUCCESS");
}

#[tokio::test(flavor = "multi_thread")]
async fn deadline_answers_failed_before_the_function_would_be_killed() {
    let timeout = Duration::from_secs(6);
    let bed = start(timeout).await;
    let create = bed.create(TEST_FAULT, "Slow", json!({"Behaviour": "Hang"})).await;
    let started = Instant::now();
    bed.invoke(&create).await;
    let elapsed = started.elapsed();
    assert!(elapsed < timeout, "answered after {elapsed:?}, past the {timeout:?} function timeout");
    let answer = one_answer(&bed, &create).await;
    assert_eq!(answer.status(), "FAILED");
    assert!(answer.reason().contains("Custom::TestFault Slow: did not finish within 3 s"), "{}", answer.reason());
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_resource_type_answers_failed_listing_the_served_types() {
    let bed = start(Duration::from_secs(30)).await;
    let create = bed.create("Custom::SeedAuthoritys", "Seed", json!({})).await;
    bed.invoke(&create).await;
    let answer = one_answer(&bed, &create).await;
    assert_eq!(answer.status(), "FAILED");
    assert!(answer.reason().contains("does not serve resource type \"Custom::SeedAuthoritys\""), "{}", answer.reason());
    let served = answer.reason().split("it serves ").nth(1).unwrap_or_default();
    assert!(served.contains("Custom::ServicesHealthy") && served.contains("Custom::TestFault"), "{}", answer.reason());
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_unknown_and_wrongly_typed_properties_are_named() {
    let bed = start(Duration::from_secs(30)).await;
    let cases = [
        (json!({"Count": "3"}), "ResourceProperties: missing field `Behaviour`"),
        (
            json!({"Behaviour": "Succeed", "Colour": "red"}),
            "unknown field `Colour`, expected one of `Behaviour`, `Count`, `Enabled`",
        ),
        (
            json!({"Behaviour": "Succeed", "Count": "three"}),
            "property Count: invalid value: string \"three\", expected a whole number such as \"30\"",
        ),
        (
            json!({"Behaviour": "Succeed", "Enabled": "yes"}),
            "property Enabled: invalid value: string \"yes\", expected true or false",
        ),
    ];
    for (properties, expected) in cases {
        let create = bed.create(TEST_FAULT, "Typed", properties).await;
        bed.invoke(&create).await;
        let answer = one_answer(&bed, &create).await;
        assert_eq!(answer.status(), "FAILED");
        assert!(answer.reason().starts_with("Custom::TestFault Typed: "), "{}", answer.reason());
        assert!(answer.reason().contains(expected), "expected {expected:?} in {:?}", answer.reason());
        assert!(answer.reason().contains("Fix the resource's Properties in the template"), "{}", answer.reason());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_after_a_failed_create_succeeds_without_touching_anything() {
    let bed = start(Duration::from_secs(30)).await;
    let properties = json!({"Behaviour": "Fail"});
    let create = bed.create(TEST_FAULT, "Rollback", properties.clone()).await;
    bed.invoke(&create).await;
    let failed = one_answer(&bed, &create).await;
    assert_eq!(failed.status(), "FAILED");

    // The same properties would fail a handler's Delete: success shows the handler was not run.
    let delete = bed.delete(TEST_FAULT, "Rollback", failed.physical_id(), properties).await;
    bed.invoke(&delete).await;
    let deleted = one_answer(&bed, &delete).await;
    assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.json);
    assert_eq!(deleted.physical_id(), failed.physical_id());
    let logs = bed.function.logs_once(|logs| logs.contains("its Create failed: nothing to delete")).await;
    assert!(logs.contains("its Create failed: nothing to delete"), "{logs}");
}

#[tokio::test(flavor = "multi_thread")]
async fn response_url_answering_500_twice_then_200_is_retried_with_an_empty_content_type() {
    let bed = start(Duration::from_secs(30)).await;
    let endpoint = ScriptedEndpoint::start(&[500, 503]).await;
    let create = bed.create(TEST_FAULT, "Flaky", json!({"Behaviour": "Succeed"})).await;
    let create =
        create.set("ResponseURL", format!("{}?X-Amz-Signature=0123456789abcdef&X-Amz-Expires=7200", endpoint.url));
    let returned = bed.invoke(&create).await;
    assert_eq!(returned["delivered"], true, "{returned}");
    let received = endpoint.received();
    assert_eq!(received.len(), 3, "two failures, then the answer");
    for request in &received {
        assert_eq!(request.content_type.as_deref(), Some(""), "Content-Type must be empty");
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["Status"], "SUCCESS");
    }
    let logs = bed.function.logs_after_request(create.body["RequestId"].as_str().unwrap_or_default()).await;
    assert!(logs.contains("HTTP 500"), "{logs}");
    assert!(!logs.contains("0123456789abcdef"), "the signature reached the log:\n{logs}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_response_url_is_logged_and_the_invocation_returns() {
    let timeout = Duration::from_secs(6);
    let bed = start(timeout).await;
    let closed_port = qa_lookup_testbed::free_port();
    let create = bed.create(TEST_FAULT, "Lost", json!({"Behaviour": "Succeed"})).await;
    let create =
        create.set("ResponseURL", format!("http://127.0.0.1:{closed_port}/response?X-Amz-Signature=fedcba9876543210"));
    let started = Instant::now();
    let returned = bed.invoke(&create).await;
    assert!(started.elapsed() < timeout, "returned after {:?}", started.elapsed());
    assert_eq!(returned["delivered"], false, "{returned}");
    let logs = bed.function.logs_after_request(create.body["RequestId"].as_str().unwrap_or_default()).await;
    assert!(logs.contains("could not deliver the answer to CloudFormation"), "{logs}");
    assert!(logs.contains(&format!("http://127.0.0.1:{closed_port}/response?<signature redacted>")), "{logs}");
    assert!(!logs.contains("fedcba9876543210"), "the signature reached the log:\n{logs}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_kilobyte_reason_is_cut_at_a_character_boundary_to_fit() {
    let bed = start(Duration::from_secs(30)).await;
    let create = bed.create(TEST_FAULT, "Verbose", json!({"Behaviour": "FailWithLongReason"})).await;
    bed.invoke(&create).await;
    let answer = one_answer(&bed, &create).await;
    assert_eq!(answer.status(), "FAILED");
    assert!(answer.bytes.len() > 4000, "cut no more than needed: {} bytes", answer.bytes.len());
    assert!(answer.reason().starts_with("Custom::TestFault Verbose: a long reason: ünïcödé"));
    let pointer = format!(
        "(cut; full text in CloudWatch Logs group /aws/lambda/qa-lookup-custom-resources stream \
         2026/11/25/[$LATEST]testbed, request {})",
        create.body["RequestId"].as_str().unwrap_or_default()
    );
    assert!(answer.reason().ends_with(&pointer), "{}", answer.reason());
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_event_with_a_response_url_answers_failed_and_one_without_is_logged() {
    let bed = start(Duration::from_secs(30)).await;
    let malformed = bed.create(TEST_FAULT, "Odd", json!({"Behaviour": "Succeed"})).await.set("RequestType", "Upsert");
    bed.invoke(&malformed).await;
    let answer = one_answer(&bed, &malformed).await;
    assert_eq!(answer.status(), "FAILED");
    assert!(answer.reason().contains("not a valid CloudFormation custom-resource request"), "{}", answer.reason());

    let no_url = bed.create(TEST_FAULT, "NoUrl", json!({"Behaviour": "Succeed"})).await.remove("ResponseURL");
    let returned = bed.invoke(&no_url).await;
    assert_eq!(returned["delivered"], false);
    let logs = bed.function.logs_once(|logs| logs.contains("the event has no ResponseURL")).await;
    assert!(logs.contains("the event has no ResponseURL"), "{logs}");
}
