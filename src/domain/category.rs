use std::fmt;

use serde::{Deserialize, Serialize};

/// What kind of message this is. Only marketing gets a footer and is checked
/// against suppressions; a message that does not say is marketing, because
/// the safe mistake is an extra footer, not a missed opt-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    #[default]
    Marketing,
    Transactional,
    Otp,
}

impl Category {
    pub const ALL: [Category; 3] = [Category::Marketing, Category::Transactional, Category::Otp];

    pub fn parse(s: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Marketing => "marketing",
            Category::Transactional => "transactional",
            Category::Otp => "otp",
        }
    }

    pub fn is_marketing(self) -> bool {
        self == Category::Marketing
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_is_exact_and_round_trips() {
        for c in Category::ALL {
            assert_eq!(Category::parse(c.as_str()), Some(c));
        }
        assert_eq!(Category::parse("Marketing"), None);
        assert_eq!(Category::parse("promo"), None);
        assert_eq!(Category::default(), Category::Marketing);
    }
}
