//! The Keystone API of the gateway: every `/v3` request not answered
//! locally is read whole (bounded), classified by [`routes::classify`] and
//! handed to the concern that answers it.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use keyfed_shared::error::{ApiError, ErrorKind};

use crate::error::{GatewayError, Result};
use crate::request::Incoming;
use crate::routes::{self, Route};
use crate::state::{AppState, Gateway};
use crate::{auth, fanout, placement};

/// The metrics label of the route that answered, set on the response.
#[derive(Clone, Copy, Debug)]
pub struct RouteLabel(pub &'static str);

/// The fallback handler for everything under `/v3` (and unknown paths).
pub async fn dispatch(State(state): State<AppState>, request: Request) -> Response {
    let (route, label) = routes::classify(request.method(), request.uri().path());
    let mut response = match read(&state, request).await {
        Ok(incoming) => answer(&state, route, &incoming)
            .await
            .unwrap_or_else(IntoResponse::into_response),
        Err(e) => e.into_response(),
    };
    response.extensions_mut().insert(RouteLabel(label));
    response
}

/// Reads the request whole; a body over the limit is 413.
async fn read(state: &Gateway, request: Request) -> Result<Incoming> {
    let (parts, body): (_, Body) = request.into_parts();
    let body = axum::body::to_bytes(body, state.config.server.max_body_bytes)
        .await
        .map_err(|_| {
            GatewayError::api(ErrorKind::PayloadTooLarge, "The request body is too large.")
        })?;
    let headers: HeaderMap = parts.headers;
    Ok(Incoming {
        method: parts.method,
        uri: parts.uri,
        headers,
        body,
    })
}

async fn answer(state: &Gateway, route: Route, req: &Incoming) -> Result<Response> {
    match route {
        Route::ValidateToken => auth::validate(state, req).await,
        Route::IssueToken => auth::issue(state, req).await,
        Route::RevokeToken => auth::revoke(state, req).await,
        Route::List(listing) => fanout::list(state, req, listing).await,
        Route::Create(kind) => placement::create(state, req, kind).await,
        Route::Delete(kind, id) => placement::forward(state, req, kind, &id).await,
        Route::Update(kind, id) => placement::forward(state, req, kind, &id).await,
        Route::Project(id) => {
            let owner = state
                .view
                .owner_of_project(&id)
                .ok_or(GatewayError::NoMember)?;
            Ok(state.call(&owner, &req.forward()).await?.into_response())
        }
        Route::User(id) => {
            let home = state.view.home_of_user(&id).ok_or(GatewayError::NoMember)?;
            Ok(state.call(&home, &req.forward()).await?.into_response())
        }
        Route::Any => {
            let member = state.any_member()?;
            Ok(state.call(&member, &req.forward()).await?.into_response())
        }
        Route::MethodNotAllowed => Err(GatewayError::api(
            ErrorKind::MethodNotAllowed,
            "The method is not allowed for the requested URL.",
        )),
        Route::NotFound => Err(GatewayError::Api(ApiError::new(
            ErrorKind::NotFound,
            "The resource could not be found.",
        ))),
    }
}
