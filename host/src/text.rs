//! Plugin text on its way to a terminal or a log line: control characters escaped, so a plugin
//! cannot move the cursor, clear the screen, forge a line or reverse the text direction.

use std::borrow::Cow;

/// `s` with every character a terminal would act on written as `\u{..}`: C0 and C1 controls
/// (ESC, CR, LF, BEL, TAB, CSI …), DEL, and the bidi overrides and isolates (U+202A–U+202E,
/// U+2066–U+2069, plus the marks U+061C, U+200E, U+200F). One plugin string stays one line.
/// Borrows when there is nothing to escape.
pub fn printable(s: &str) -> Cow<'_, str> {
    escape(s, false)
}

/// Like [`printable`] but keeps line breaks: for the host's own multi-line messages (an error
/// and the config lines that fix it) that may carry plugin text somewhere inside.
pub fn printable_lines(s: &str) -> Cow<'_, str> {
    escape(s, true)
}

fn escape(s: &str, keep_newlines: bool) -> Cow<'_, str> {
    let unsafe_char = |c: char| needs_escape(c) && !(keep_newlines && c == '\n');
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if unsafe_char(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    // `is_control` is C0 (with TAB, LF, CR, ESC), DEL and C1 (with CSI, U+009B).
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{061c}' | '\u{200e}' | '\u{200f}')
}

/// At most `max` bytes of `s` (cut on a character boundary), with what was left out said after
/// it: for plugin strings that may be huge (a pending job's token) where only the start helps.
pub fn clipped(s: &str, max: usize) -> Cow<'_, str> {
    if s.len() <= max {
        return Cow::Borrowed(s);
    }
    let cut = s.floor_char_boundary(max);
    Cow::Owned(format!("{}… ({} more bytes, {} in all)", &s[..cut], s.len() - cut, s.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        let s = "a plain line: résumé, 東京, emoji 🎨, quotes \"'\\";
        assert!(matches!(printable(s), Cow::Borrowed(_)));
        assert_eq!(printable(s), s);
    }

    #[test]
    fn every_control_and_direction_override_is_escaped() {
        let nasty = "a\u{1b}[2J\rb\nc\td\u{7}e\u{7f}f\u{9b}31mg\u{202e}h\u{2066}i\u{200f}j\0k";
        let p = printable(nasty);
        assert_eq!(p, "a\\u{1b}[2J\\u{d}b\\u{a}c\\u{9}d\\u{7}e\\u{7f}f\\u{9b}31mg\\u{202e}h\\u{2066}i\\u{200f}j\\u{0}k");
        assert!(p.chars().all(|c| !needs_escape(c)), "{p}");
    }

    #[test]
    fn the_lines_variant_keeps_only_line_feeds() {
        let msg = "plugin said: x\u{1b}[31m\r\n    [plugins.x.limits]\n    memory_mb = 512";
        assert_eq!(printable_lines(msg), "plugin said: x\\u{1b}[31m\\u{d}\n    [plugins.x.limits]\n    memory_mb = 512");
        assert_eq!(printable_lines("two\nlines"), "two\nlines");
    }

    #[test]
    fn clipping_cuts_on_a_character_boundary_and_says_how_much_is_left() {
        assert_eq!(clipped("short", 10), "short");
        assert_eq!(clipped("ééé", 3), "é… (4 more bytes, 6 in all)");
    }
}
