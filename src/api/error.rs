//! Mapping errors to HTTP answers with a JSON body that says what went wrong and what
//! to do about it.

use axum::extract::rejection::JsonRejection;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::api::types::{ErrorBody, ErrorDetail};
use crate::error::VigilError;

/// An API error: status, code, message, optional hint.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    detail: ErrorDetail,
}

impl ApiError {
    /// Build an error.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            detail: ErrorDetail {
                code: code.into(),
                message: message.into(),
                hint: None,
                retryable: false,
            },
        }
    }

    /// 400: the request is wrong; `message` names the field.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", message)
    }

    /// 404: no such object.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Add a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.detail.hint = Some(hint.into());
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(ErrorBody { error: self.detail })).into_response()
    }
}

impl From<vigil_raft::Error> for ApiError {
    fn from(e: vigil_raft::Error) -> Self {
        use vigil_raft::Error as E;
        let retryable = e.is_retryable();
        let (status, code, hint) = match &e {
            E::NoLeader | E::NotLeader { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "no_leader",
                Some("a leader is elected within seconds when a majority of members is up; check `vigil cluster status`"),
            ),
            E::Unreachable { .. } => (StatusCode::BAD_GATEWAY, "unreachable", None),
            E::Timeout { .. } => (
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                Some("the outcome is unknown: check the state before retrying"),
            ),
            E::Retired(_) => (StatusCode::GONE, "retired", None),
            E::NotInitialized(_) => (StatusCode::CONFLICT, "not_initialized", None),
            E::AlreadyInitialized => (
                StatusCode::CONFLICT,
                "already_initialized",
                Some("use `vigil cluster status` to see the cluster it belongs to"),
            ),
            E::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid", None),
            E::Remote { .. } => (StatusCode::BAD_GATEWAY, "remote", None),
            E::Storage(_) | E::Codec(_) | E::Fatal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal", Some("see the member's log"))
            }
        };
        let mut err = ApiError::new(status, code, e.to_string());
        err.detail.retryable = retryable;
        if let Some(h) = hint {
            err = err.hint(h);
        }
        err
    }
}

impl From<VigilError> for ApiError {
    fn from(e: VigilError) -> Self {
        match e {
            VigilError::Raft(r) => r.into(),
            VigilError::UnknownSetting { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_setting", e.to_string())
                    .hint("`vigil settings list` shows every setting")
            }
            VigilError::InvalidSetting { .. } => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_value", e.to_string())
            }
            VigilError::Rejected(_) => {
                ApiError::new(StatusCode::CONFLICT, "rejected", e.to_string())
            }
            VigilError::UnknownMember(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_member", e.to_string())
            }
            VigilError::Config(_) | VigilError::Io { .. } => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    /// A body that is not the expected JSON: 400 with serde's message (it names the
    /// field), 413 when it is too large, 415 without a JSON content type.
    fn from(r: JsonRejection) -> Self {
        let status = match r.status() {
            StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
            s => s,
        };
        ApiError::new(status, "invalid_body", r.body_text())
    }
}

/// Answer for unknown paths.
pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no such endpoint: {uri}"),
    )
}
