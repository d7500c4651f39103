//! Placeholder: routes come with the ark engine work.

/// This provider's routes.
pub fn router() -> axum::Router<crate::State> {
    axum::Router::new()
}
