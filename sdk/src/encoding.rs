//! Base64 and data URIs, as providers want them.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Standard base64 with padding.
pub fn base64_encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Decode standard base64 (padding optional, whitespace tolerated).
pub fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    let cleaned: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    engine.decode(cleaned).map_err(|e| format!("bad base64: {e}"))
}

/// `data:<mime>;base64,<data>`, with the media type in lowercase (some providers reject `image/PNG`).
pub fn data_uri(mime: &str, bytes: &[u8]) -> String {
    format!("data:{};base64,{}", mime.to_ascii_lowercase(), base64_encode(bytes))
}

/// Split a base64 data URI into its media type and bytes.
pub fn parse_data_uri(uri: &str) -> Result<(String, Vec<u8>), String> {
    let rest = uri.strip_prefix("data:").ok_or("not a data URI (no `data:` prefix)")?;
    let (head, data) = rest.split_once(',').ok_or("not a data URI (no `,`)")?;
    let mime = head.strip_suffix(";base64").ok_or("only base64 data URIs are supported")?;
    Ok((mime.to_string(), base64_decode(data)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_uri_round_trips_and_lowercases() {
        let uri = data_uri("image/PNG", b"\x89PNG");
        assert!(uri.starts_with("data:image/png;base64,"));
        assert_eq!(parse_data_uri(&uri).unwrap(), ("image/png".into(), b"\x89PNG".to_vec()));
    }
}
