//! The OpenAPI document at `/openapi.json` describes exactly the routes the server has:
//! every route of `routes::ROUTES` is in it with its method, parameters, body, security
//! and success status, and nothing else is. `openapi-spec-validator` (PyPI) validates it
//! when installed; `.ci/run` installs it and sets `IM_REQUIRE_OPENAPI_VALIDATOR=1`.

use std::collections::BTreeSet;

use im_transport_ws::OPENAPI_JSON;
use im_transport_ws::routes::{Handler, Param, ROUTES};
use serde_json::Value;

fn doc() -> Value {
    serde_json::from_str(OPENAPI_JSON).expect("openapi.json is JSON")
}

#[test]
fn the_document_lists_exactly_the_routes() {
    let doc = doc();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let routed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_owned()))
        .collect();
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from openapi.json: {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "openapi.json paths with no route: {unrouted:?}"
    );
}

#[test]
fn each_operation_matches_its_route() {
    let doc = doc();
    let mut operation_ids = BTreeSet::new();
    for route in ROUTES {
        let op = &doc["paths"][route.path][route.method.as_str().to_lowercase()];
        let name = format!("{} {}", route.method, route.path);
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no operationId"));
        assert!(
            operation_ids.insert(id.to_owned()),
            "{name}: operationId {id} twice"
        );
        if let Handler::Command(kind) = route.handler {
            assert_eq!(id, kind, "{name}: operationId is the protocol command");
        }
        let status = route.status.as_u16().to_string();
        assert!(
            op["responses"].get(&status).is_some(),
            "{name}: success status {status} is not documented"
        );
        let other_success: Vec<&String> = op["responses"]
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| k.starts_with('2') && **k != status)
            .collect();
        assert!(
            other_success.is_empty(),
            "{name}: other success statuses {other_success:?}"
        );

        let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
        assert_eq!(
            secured, route.auth,
            "{name}: security does not match the route's auth"
        );
        if route.auth {
            assert!(
                op["responses"].get("401").is_some(),
                "{name}: 401 not documented"
            );
        }
        if route.body {
            assert!(
                op["requestBody"]["content"]["application/json"].is_object(),
                "{name}: JSON body not documented"
            );
        } else if route.handler != Handler::Upload {
            assert!(
                op.get("requestBody").is_none(),
                "{name}: documents a body it does not take"
            );
        }

        let mut params: Vec<(String, String)> = op["parameters"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .map(|p| {
                        (
                            p["name"].as_str().unwrap().to_owned(),
                            p["in"].as_str().unwrap().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        params.sort();
        let mut expected: Vec<(String, String)> = route
            .params
            .iter()
            .map(|(n, _)| {
                let place = if route.path.contains(&format!("{{{n}}}")) {
                    "path"
                } else {
                    "query"
                };
                ((*n).to_owned(), place.to_owned())
            })
            .collect();
        expected.sort();
        assert_eq!(params, expected, "{name}: parameters");
        for (n, kind) in route.params {
            let schema = &op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == *n)
                .unwrap()["schema"];
            match kind {
                Param::Int => assert_eq!(schema["type"], "integer", "{name}: {n}"),
                Param::IntList => assert_eq!(schema["type"], "array", "{name}: {n}"),
                Param::Text => assert!(
                    schema["type"] == "string" || schema.get("$ref").is_some(),
                    "{name}: {n}"
                ),
            }
        }
    }
}

#[test]
fn every_reference_resolves() {
    let doc = doc();
    fn walk(value: &Value, doc: &Value, refs: &mut usize) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    let pointer = target.strip_prefix('#').expect("local references only");
                    assert!(doc.pointer(pointer).is_some(), "dangling $ref {target}");
                    *refs += 1;
                }
                map.values().for_each(|v| walk(v, doc, refs));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, doc, refs)),
            _ => {}
        }
    }
    let mut refs = 0;
    walk(&doc, &doc, &mut refs);
    assert!(refs > 50, "only {refs} references: the schemas are missing");
}

#[test]
fn the_document_validates() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
    let output = std::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator", path])
        .output();
    let required = std::env::var("IM_REQUIRE_OPENAPI_VALIDATOR").as_deref() == Ok("1");
    match output {
        Ok(out) if out.status.success() => {
            let said = String::from_utf8_lossy(&out.stdout);
            assert!(said.contains("OK"), "validator said: {said}");
        }
        Ok(out)
            if String::from_utf8_lossy(&out.stderr).contains("No module named") && !required =>
        {
            eprintln!(
                "SKIPPED: openapi-spec-validator is not installed (pip install openapi-spec-validator)"
            );
        }
        Ok(out) => panic!(
            "openapi.json does not validate:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) if !required => eprintln!("SKIPPED: no python3 to validate openapi.json: {e}"),
        Err(e) => panic!("python3 is needed to validate openapi.json: {e}"),
    }
}
