//! The admin API: `/admin/v1/…` on the `--admin` address, for the operator's tools. Every
//! route needs `Authorization: Bearer <--admin-token>`; without the token set the routes
//! do not exist. The document of the routes is `admin-openapi.json`, served at
//! `/admin/v1/openapi.json`.
//!
//! | route | does |
//! |---|---|
//! | `GET /admin/v1/stats` | this node: id, version, uptime, sessions, users online |
//! | `GET /admin/v1/sessions` | this node's sessions |
//! | `GET /admin/v1/users?username=NAME` | a user by name: id, profile, disabled, devices |
//! | `GET /admin/v1/users/{id}` | the same by id |
//! | `DELETE /admin/v1/users/{id}` | delete the account: signed out, out of its groups (ownership handed on), friendships and requests ended, profile wiped; its messages stay |
//! | `POST /admin/v1/users/{id}/disable` | sign every device out and refuse logins |
//! | `POST /admin/v1/users/{id}/enable` | allow logins again |
//! | `POST /admin/v1/users/{id}/password` | set a new password (`{"password": …}`), signing every device out |
//! | `DELETE /admin/v1/users/{id}/devices/{device}` | sign one device out |
//! | `POST /admin/v1/invites` | make an invite code (`{"uses", "valid_for", "note"}`, each optional): the code, shown this once |
//! | `GET /admin/v1/invites` | every invite: id (the code's hash), uses left, expiry, note |
//! | `DELETE /admin/v1/invites/{id}` | withdraw an invite |

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use im_core::Engine;
use im_core::model::{DeviceId, User, UserId};
use im_core::protocol::{ErrorBody, ErrorCode};
use im_transport_ws::http::{bearer, error, error_of, json};
use serde_json::json;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::http::header::{self, HeaderMap, HeaderValue};
use warp::reply::Response;

/// The document of these routes.
const OPENAPI: &str = include_str!("../admin-openapi.json");

/// What `POST /admin/v1/invites` takes; each field has a default.
#[derive(serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct NewInvite {
    /// Registrations it admits.
    uses: u32,
    /// How long it stays good: `"7d"`, `"12h"`, or milliseconds.
    #[serde(with = "im_core::engine::millis")]
    valid_for: std::time::Duration,
    /// For the operator: whom it was for.
    note: String,
}

impl Default for NewInvite {
    fn default() -> Self {
        NewInvite {
            uses: 1,
            valid_for: std::time::Duration::from_secs(7 * 24 * 3600),
            note: String::new(),
        }
    }
}

/// Largest request body (a new password, an invite's settings).
const MAX_BODY: u64 = 4096;

/// The admin routes, each behind the token.
pub(crate) fn routes(engine: Engine, token: String) -> BoxedFilter<(Response,)> {
    let token = Arc::new(token);
    let started = Instant::now();
    let admin = Arc::new(Admin { engine, started });
    let authorized = warp::header::headers_cloned().and_then(move |headers: HeaderMap| {
        let token = token.clone();
        async move {
            let right = bearer(&headers).is_some_and(|given| {
                // In time that does not depend on where the first difference is.
                bool::from(subtle::ConstantTimeEq::ct_eq(
                    given.as_bytes(),
                    token.as_bytes(),
                ))
            });
            if right {
                Ok(())
            } else {
                Err(warp::reject::custom(Unauthorized))
            }
        }
    });
    let with = move || {
        let admin = admin.clone();
        warp::any().map(move || admin.clone())
    };
    let base = warp::path("admin").and(warp::path("v1"));

    let openapi = warp::path!("openapi.json").and(warp::get()).map(|| {
        let mut response = Response::new(OPENAPI.into());
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    });
    let stats = warp::path!("stats")
        .and(warp::get())
        .and(with())
        .map(|a: Arc<Admin>| a.stats());
    let sessions = warp::path!("sessions")
        .and(warp::get())
        .and(with())
        .map(|a: Arc<Admin>| ok(&json!({ "sessions": a.engine.sessions() })));
    let by_name = warp::path!("users")
        .and(warp::get())
        .and(warp::query::<std::collections::HashMap<String, String>>())
        .and(with())
        .then(
            |query: std::collections::HashMap<String, String>, a: Arc<Admin>| async move {
                match query.get("username") {
                    Some(name) => a.user_by_name(name).await,
                    None => error_of(ErrorCode::Invalid, "give ?username=NAME"),
                }
            },
        );
    let by_id = warp::path!("users" / u64)
        .and(warp::get())
        .and(with())
        .then(|id: u64, a: Arc<Admin>| async move { a.user(UserId(id)).await });
    let delete = warp::path!("users" / u64)
        .and(warp::delete())
        .and(with())
        .then(|id: u64, a: Arc<Admin>| async move {
            match a.engine.delete_user(UserId(id)).await {
                Ok(undone) => ok(&json!({ "deleted": undone })),
                Err(body) => error(&body),
            }
        });
    let disable =
        warp::path!("users" / u64 / "disable")
            .and(warp::post())
            .and(with())
            .then(|id: u64, a: Arc<Admin>| async move {
                changed(a.engine.disable_user(UserId(id)).await)
            });
    let enable = warp::path!("users" / u64 / "enable")
        .and(warp::post())
        .and(with())
        .then(
            |id: u64, a: Arc<Admin>| async move { changed(a.engine.enable_user(UserId(id)).await) },
        );
    let password = warp::path!("users" / u64 / "password")
        .and(warp::post())
        .and(warp::body::content_length_limit(MAX_BODY))
        .and(warp::body::bytes())
        .and(with())
        .then(|id: u64, body: Bytes, a: Arc<Admin>| async move {
            #[derive(serde::Deserialize)]
            struct NewPassword {
                password: String,
            }
            match serde_json::from_slice::<NewPassword>(&body) {
                Ok(new) => done(a.engine.reset_password(UserId(id), &new.password).await),
                Err(e) => error_of(
                    ErrorCode::Invalid,
                    format!("expected {{\"password\": …}}: {e}"),
                ),
            }
        });
    let sign_out = warp::path!("users" / u64 / "devices" / String)
        .and(warp::delete())
        .and(with())
        .then(|id: u64, device: String, a: Arc<Admin>| async move {
            let device = percent_decode(&device);
            match DeviceId::new(&device) {
                Ok(device) => done(a.engine.sign_out_device(UserId(id), &device).await),
                Err(e) => error_of(ErrorCode::Invalid, e.to_string()),
            }
        });

    let create_invite = warp::path!("invites")
        .and(warp::post())
        .and(small_body())
        .and(with())
        .then(|body: Bytes, a: Arc<Admin>| async move {
            let asked = if body.is_empty() {
                Ok(NewInvite::default())
            } else {
                serde_json::from_slice::<NewInvite>(&body)
            };
            match asked {
                Ok(new) => match a
                    .engine
                    .create_invite(new.uses, new.valid_for, &new.note)
                    .await
                {
                    Ok((code, invite)) => json(
                        StatusCode::CREATED,
                        serde_json::to_vec(&json!({ "code": code, "invite": invite }))
                            .unwrap_or_default(),
                    ),
                    Err(body) => error(&body),
                },
                Err(e) => error_of(
                    ErrorCode::Invalid,
                    format!("expected {{\"uses\", \"valid_for\", \"note\"}}, each optional: {e}"),
                ),
            }
        });
    let list_invites =
        warp::path!("invites")
            .and(warp::get())
            .and(with())
            .then(|a: Arc<Admin>| async move {
                match a.engine.invites().await {
                    Ok(invites) => ok(&json!({ "invites": invites })),
                    Err(body) => error(&body),
                }
            });
    let revoke_invite = warp::path!("invites" / String)
        .and(warp::delete())
        .and(with())
        .then(|id: String, a: Arc<Admin>| async move {
            match a.engine.revoke_invite(&id).await {
                Ok(true) => done(Ok(())),
                Ok(false) => error_of(ErrorCode::NotFound, "no such invite"),
                Err(body) => error(&body),
            }
        });

    let api = openapi
        .or(stats)
        .unify()
        .or(sessions)
        .unify()
        .or(by_name)
        .unify()
        .or(by_id)
        .unify()
        .or(delete)
        .unify()
        .or(disable)
        .unify()
        .or(enable)
        .unify()
        .or(password)
        .unify()
        .or(sign_out)
        .unify()
        .or(create_invite)
        .unify()
        .or(list_invites)
        .unify()
        .or(revoke_invite)
        .unify();
    base.and(authorized)
        .untuple_one()
        .and(api)
        .recover(|rejection: warp::Rejection| async move {
            if rejection.find::<Unauthorized>().is_some() {
                let mut response = error(&ErrorBody::new(
                    ErrorCode::Unauthorized,
                    "the admin API needs Authorization: Bearer <the admin token>",
                ));
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                Ok::<_, std::convert::Infallible>(response)
            } else if rejection.is_not_found() {
                Ok(error(&ErrorBody::new(
                    ErrorCode::NotFound,
                    "no such admin route",
                )))
            } else if let Some(e) = rejection.find::<warp::reject::PayloadTooLarge>() {
                Ok(error(&ErrorBody::new(ErrorCode::TooLarge, e.to_string())))
            } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
                let mut response = error(&ErrorBody::new(
                    ErrorCode::Invalid,
                    "this method is not allowed on this admin route",
                ));
                *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
                Ok(response)
            } else {
                Ok(error(&ErrorBody::new(
                    ErrorCode::Invalid,
                    format!("{rejection:?}"),
                )))
            }
        })
        .unify()
        .boxed()
}

/// A request without the right token.
#[derive(Debug)]
struct Unauthorized;

impl warp::reject::Reject for Unauthorized {}

/// What the routes share.
struct Admin {
    engine: Engine,
    started: Instant,
}

impl Admin {
    fn stats(&self) -> Response {
        let sessions = self.engine.sessions();
        let mut users: Vec<UserId> = sessions.iter().map(|s| s.user).collect();
        users.sort_unstable();
        users.dedup();
        ok(&json!({
            "node": self.engine.node().to_string(),
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_secs": self.started.elapsed().as_secs(),
            "sessions": sessions.len(),
            "users_online": users.len(),
        }))
    }

    async fn user(&self, id: UserId) -> Response {
        match self.engine.storage().user(id).await {
            Ok(user) => self.describe(user).await,
            Err(im_core::storage::StorageError::NotFound(_)) => {
                error_of(ErrorCode::NotFound, "no such user")
            }
            Err(e) => unavailable(e),
        }
    }

    async fn user_by_name(&self, name: &str) -> Response {
        match self
            .engine
            .storage()
            .user_by_name(&name.trim().to_lowercase())
            .await
        {
            Ok(user) => self.describe(user).await,
            Err(im_core::storage::StorageError::NotFound(_)) => {
                error_of(ErrorCode::NotFound, "no such user")
            }
            Err(e) => unavailable(e),
        }
    }

    /// The user, whether they are disabled, and their devices (never their tokens).
    async fn describe(&self, user: User) -> Response {
        let storage = self.engine.storage();
        let (disabled, devices) =
            match tokio::try_join!(storage.is_disabled(user.id), storage.devices(user.id)) {
                Ok(both) => both,
                Err(e) => return unavailable(e),
            };
        let devices: Vec<_> = devices.into_iter().map(|record| record.device).collect();
        ok(&json!({ "user": user, "disabled": disabled, "devices": devices }))
    }
}

fn ok(body: &serde_json::Value) -> Response {
    json(StatusCode::OK, serde_json::to_vec(body).unwrap_or_default())
}

fn unavailable(e: impl std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "admin API: storage failed");
    error_of(ErrorCode::Unavailable, "the database did not answer")
}

fn changed(result: Result<bool, ErrorBody>) -> Response {
    match result {
        Ok(changed) => ok(&json!({ "changed": changed })),
        Err(body) => error(&body),
    }
}

fn done(result: Result<(), ErrorBody>) -> Response {
    match result {
        Ok(()) => {
            let mut response = Response::new(Bytes::new().into());
            *response.status_mut() = StatusCode::NO_CONTENT;
            response
        }
        Err(body) => error(&body),
    }
}

/// A request body of at most [`MAX_BODY`] bytes; a request without one (neither
/// `Content-Length` nor `Transfer-Encoding`) has an empty one.
fn small_body() -> impl Filter<Extract = (Bytes,), Error = warp::Rejection> + Clone {
    let none = warp::header::optional::<String>("content-length")
        .and(warp::header::optional::<String>("transfer-encoding"))
        .and_then(
            |length: Option<String>, encoding: Option<String>| async move {
                if length.is_none() && encoding.is_none() {
                    Ok(Bytes::new())
                } else {
                    Err(warp::reject::not_found())
                }
            },
        );
    none.or(warp::body::content_length_limit(MAX_BODY).and(warp::body::bytes()))
        .unify()
}

/// A path segment as sent (`%20` and the like decoded).
fn percent_decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}
