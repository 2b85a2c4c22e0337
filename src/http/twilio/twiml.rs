//! TwiML answers for Twilio's inbound-message webhook. Pure: no I/O.
//!
//! Twilio sends the `<Message>` text back to the sender as an SMS; an empty
//! `<Response/>` sends nothing.

/// The content type Twilio expects for TwiML.
pub const CONTENT_TYPE: &str = "text/xml; charset=utf-8";

/// `<Response><Message>reply</Message></Response>`, or an empty response
/// when there is nothing to say. The text is XML-escaped.
pub fn message_response(reply: Option<&str>) -> String {
    let mut out = String::from(r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    match reply.filter(|r| !r.is_empty()) {
        None => out.push_str("<Response/>"),
        Some(text) => {
            out.push_str("<Response><Message>");
            push_escaped(&mut out, text);
            out.push_str("</Message></Response>");
        }
    }
    out
}

fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot carry at all; a reply never needs them.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_is_one_message() {
        assert_eq!(
            message_response(Some("You are unsubscribed from ACME. Reply START to resubscribe.")),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>You are unsubscribed from ACME. Reply START to resubscribe.</Message></Response>"
        );
    }

    #[test]
    fn text_is_escaped() {
        let xml = message_response(Some("Tom & Jerry <b>\"hi\"</b> it's\u{1}"));
        assert!(
            xml.contains(
                "<Message>Tom &amp; Jerry &lt;b&gt;&quot;hi&quot;&lt;/b&gt; it&apos;s</Message>"
            ),
            "{xml}"
        );
    }

    #[test]
    fn nothing_to_say_is_an_empty_response() {
        assert!(message_response(None).ends_with("<Response/>"));
        assert!(message_response(Some("")).ends_with("<Response/>"));
        assert_eq!(
            message_response(Some("é ✓"))
                .matches("<Message>é ✓</Message>")
                .count(),
            1
        );
    }
}
