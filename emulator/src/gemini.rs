//! Placeholder: routes come with the gemini engine work.

/// This provider's routes.
pub fn router() -> axum::Router<crate::State> {
    axum::Router::new()
}
