//! The greeting card "MCP App": a self-contained HTML page served as a `ui://` resource.

/// The URI of the card template.
pub const CARD_URI: &str = "ui://acme/greeting-card";
/// The MIME type MCP Apps hosts render.
pub const CARD_MIME_TYPE: &str = "text/html;profile=mcp-app";
/// The longest message a card accepts, in characters.
pub const MAX_MESSAGE_CHARS: usize = 500;
/// The message used when the caller gives none.
pub const DEFAULT_MESSAGE: &str = "Welcome to the Acme Entra MCP server.";

const TEMPLATE: &str = include_str!("card.html");

/// Renders the card for `username` with `message`, both HTML-escaped.
pub fn render(username: &str, message: &str) -> String {
    // One pass over the template, so text the caller supplies is never scanned for placeholders.
    let mut out = String::with_capacity(TEMPLATE.len() + username.len() + message.len());
    let mut rest = TEMPLATE;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        if let Some(tail) = after.strip_prefix("{{username}}") {
            out.push_str(&escape_html(username));
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("{{message}}") {
            out.push_str(&escape_html(message));
            rest = tail;
        } else {
            out.push_str("{{");
            rest = &after[2..];
        }
    }
    out.push_str(rest);
    out
}

/// Escapes text for HTML element content and quoted attributes.
///
/// `&` goes first so the entities written for the other characters are not escaped again.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_every_special_character_once() {
        assert_eq!(escape_html(r#"<script>&"'"#), "&lt;script&gt;&amp;&quot;&#39;");
        assert_eq!(escape_html("&lt;"), "&amp;lt;");
        assert_eq!(escape_html("plain café"), "plain café");
    }

    #[test]
    fn render_fills_both_placeholders_escaped() {
        let html = render("Ada <admin>", "hi & bye");
        assert!(html.contains("Ada &lt;admin&gt;"));
        assert!(html.contains("hi &amp; bye"));
        assert!(!html.contains("{{"));
    }

    #[test]
    fn a_message_that_looks_like_a_placeholder_is_not_expanded() {
        let html = render("{{message}}", "x");
        assert!(
            html.contains("{{message}}"),
            "user text must not be re-interpreted as template"
        );
    }
}
