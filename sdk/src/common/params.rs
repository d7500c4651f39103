//! Typed access to parameters. The host has already checked kinds, ranges and choices against
//! `describe()` and filled in defaults, so a missing value means the parameter has no default.

use super::{Error, Param, Value};

/// Typed look-ups over a parameter list.
pub trait Params {
    /// The raw value of `name`.
    fn value(&self, name: &str) -> Option<&Value>;

    /// `name` as text (also the value of a `choice`).
    fn text(&self, name: &str) -> Option<&str> {
        match self.value(name)? {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }
    /// `name` as a whole number.
    fn integer(&self, name: &str) -> Option<i64> {
        match self.value(name)? {
            Value::Integer(i) => Some(*i),
            Value::Number(n) if n.fract() == 0.0 => Some(*n as i64),
            _ => None,
        }
    }
    /// `name` as a real number (whole numbers convert).
    fn number(&self, name: &str) -> Option<f64> {
        match self.value(name)? {
            Value::Number(n) => Some(*n),
            Value::Integer(i) => Some(*i as f64),
            _ => None,
        }
    }
    /// `name` as a boolean.
    fn boolean(&self, name: &str) -> Option<bool> {
        match self.value(name)? {
            Value::Boolean(b) => Some(*b),
            _ => None,
        }
    }
    /// `name` as encoded media (a parameter of kind `media`).
    fn media(&self, name: &str) -> Option<&super::Media> {
        match self.value(name)? {
            Value::Media(m) => Some(m),
            _ => None,
        }
    }
    /// `name` as text, or an `invalid-input` error naming it.
    fn require_text(&self, name: &str) -> Result<&str, Error> {
        self.text(name).ok_or_else(|| Error::invalid(format!("parameter `{name}` is required")))
    }
}

impl Params for [Param] {
    fn value(&self, name: &str) -> Option<&Value> {
        self.iter().find(|p| p.name == name).map(|p| &p.value)
    }
}

impl Params for Vec<Param> {
    fn value(&self, name: &str) -> Option<&Value> {
        self.as_slice().value(name)
    }
}

impl Param {
    /// A parameter from a name and anything that converts into a [`Value`].
    pub fn new(name: &str, value: impl Into<Value>) -> Self {
        Param { name: name.into(), value: value.into() }
    }
}
