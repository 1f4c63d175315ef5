//! GUIDs as Entra writes them (client ids, tenant ids, object ids).

/// `true` for the canonical 8-4-4-4-12 hexadecimal GUID form (RFC 4122 §3), either case, no
/// braces.
pub fn is_guid(s: &str) -> bool {
    let bytes = s.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}
