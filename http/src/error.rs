//! Errors as Keystone renders them, for shards and gateways alike.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use keyfed_shared::error::{ApiError, ErrorKind, REFUSAL_HEADER};

/// Renders a classified error as Keystone does — its status, the
/// `{"error": {"code", "title", "message"}}` body, `WWW-Authenticate` on
/// 401 — and a member's refusal in [`REFUSAL_HEADER`].
pub fn api_response(api: &ApiError) -> Response {
    let status =
        StatusCode::from_u16(api.kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, axum::Json(api.body())).into_response();
    if api.kind == ErrorKind::Unauthorized {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Keystone uri=\"/v3\""),
        );
    }
    if let Some(refusal) = api.refusal {
        response
            .headers_mut()
            .insert(REFUSAL_HEADER, HeaderValue::from_static(refusal.code()));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_travels_in_its_header_and_the_body_stays_keystones() {
        let r = api_response(&ApiError::not_owner("This member does not own project p"));
        assert_eq!(r.status(), StatusCode::CONFLICT);
        assert_eq!(r.headers()[REFUSAL_HEADER], "not-owner");
        let plain = api_response(&ApiError::conflict("taken"));
        assert!(plain.headers().get(REFUSAL_HEADER).is_none());
        let unauthorized = api_response(&ApiError::unauthorized());
        assert_eq!(
            unauthorized.headers()[header::WWW_AUTHENTICATE],
            "Keystone uri=\"/v3\""
        );
    }
}
