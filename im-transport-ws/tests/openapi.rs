//! The OpenAPI document at `/openapi.json` describes exactly the routes the server has:
//! every route of `routes::ROUTES` is in it with its method, parameters, body, security
//! and success status, and nothing else is. The committed `openapi.json` is the generated
//! document (`IM_BLESS=1` rewrites it). `openapi-spec-validator` (PyPI) validates it when
//! installed; `.ci/run` installs it and sets `IM_REQUIRE_OPENAPI_VALIDATOR=1`.

use std::collections::BTreeSet;

use im_core::protocol::{Reply, Request};
use im_transport_ws::openapi;
use im_transport_ws::routes::{Handler, Param, ROUTES};
use serde_json::Value;

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");

fn doc() -> Value {
    serde_json::from_str(openapi::json()).expect("the document is JSON")
}

#[test]
fn the_committed_file_is_the_generated_document() {
    if std::env::var("IM_BLESS").as_deref() == Ok("1") {
        std::fs::write(COMMITTED, openapi::json()).expect("openapi.json is writable");
    }
    let committed = std::fs::read_to_string(COMMITTED).expect("openapi.json is committed");
    assert!(
        committed == openapi::json(),
        "im-transport-ws/openapi.json is not the generated document: run \
         `IM_BLESS=1 cargo test -p im-transport-ws --test openapi` and commit the file"
    );
}

/// Each command route documents its request's reply (with its `type`) and a response
/// for each error code the request may answer with.
#[test]
fn commands_document_their_reply_and_errors() {
    let doc = doc();
    for route in ROUTES {
        let (Handler::Command(name) | Handler::Direct(name)) = route.handler else {
            continue;
        };
        let what = format!("{} {}", route.method, route.path);
        let command = Request::command(name).expect("a route names a request");
        let op = &doc["paths"][route.path][route.method.as_str().to_lowercase()];
        let success = &op["responses"][route.status.as_u16().to_string()];
        if command.reply != "done" {
            let reference = success["content"]["application/json"]["schema"]["$ref"]
                .as_str()
                .unwrap_or_else(|| panic!("{what}: no reply schema"));
            let pointer = reference.trim_start_matches('#');
            let schema = doc.pointer(pointer).expect("the reply schema exists");
            assert_eq!(
                schema["properties"]["type"]["const"], command.reply,
                "{what}"
            );
            assert!(Reply::NAMES.contains(&command.reply));
        }
        for code in command.errors {
            let status = im_transport_ws::http::status_of(*code).as_u16().to_string();
            let said = op["responses"][&status]["description"]
                .as_str()
                .unwrap_or_else(|| panic!("{what}: no {status} for {code:?}"));
            let name = serde_json::to_value(code).unwrap();
            assert!(
                said.contains(&format!("`{}`", name.as_str().unwrap())),
                "{what}: {status} does not name {code:?}: {said}"
            );
        }
        if route.body {
            let body = &op["requestBody"]["content"]["application/json"]["schema"];
            for (param, _) in route.params {
                assert!(
                    body["properties"].get(param).is_none(),
                    "{what}: `{param}` is a parameter and a body field"
                );
            }
        }
    }
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
    let path = COMMITTED;
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
