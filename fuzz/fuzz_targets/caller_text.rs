//! Log-line escaping (CWE-117): whatever a caller puts in a claim or a header, the text that
//! reaches a log line or an `error_description` holds no control character, no line or paragraph
//! separator, no bidi or zero-width format character, and is bounded in length.
#![no_main]
use libfuzzer_sys::fuzz_target;
use verifiers::{AuthError, CallerText, InvalidToken};

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    let safe = CallerText::new(&raw);
    assert!(!safe.as_str().chars().any(CallerText::escapes), "{safe:?}");
    // 128 characters, each escaped to at most 10 (`\u{10ffff}`), plus the `...(+N bytes)` note.
    assert!(safe.as_str().len() <= CallerText::MAX_CHARS * 10 + 32, "{}", safe.as_str().len());
    assert!(!CallerText::escape_all(&raw).chars().any(CallerText::escapes));
    // The same through an error's Display, as the log line and the challenge print it.
    let err: AuthError = InvalidToken::WrongAudience {
        found: raw.as_ref().into(),
        expected: "api://x".into(),
        request: "api://x/access_as_user".into(),
    }
    .into();
    let text = err.to_string();
    assert!(!text.chars().any(CallerText::escapes), "{text:?}");
    assert!(!text.contains('\n') && !text.contains('\r'));
});
