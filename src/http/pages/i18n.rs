//! The opt-out pages' languages: which one a visitor gets, and the texts.
//! Pure. `{tenant}` and `{number}` in a text are filled in (and escaped)
//! by the templates.

/// The languages the pages speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Fr,
    De,
    Nl,
    It,
}

impl Lang {
    /// From a language tag's primary subtag (`fr`, `fr-BE`, `FR`).
    pub fn parse(tag: &str) -> Option<Lang> {
        let primary = tag.trim().split(['-', '_']).next()?;
        Some(match primary.to_ascii_lowercase().as_str() {
            "en" => Lang::En,
            "fr" => Lang::Fr,
            "de" => Lang::De,
            "nl" => Lang::Nl,
            "it" => Lang::It,
            _ => return None,
        })
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Fr => "fr",
            Lang::De => "de",
            Lang::Nl => "nl",
            Lang::It => "it",
        }
    }

    pub fn texts(self) -> &'static Texts {
        match self {
            Lang::En => &EN,
            Lang::Fr => &FR,
            Lang::De => &DE,
            Lang::Nl => &NL,
            Lang::It => &IT,
        }
    }
}

/// Languages of countries that have no rules file of their own (their
/// rules are the English default, which says nothing about the people).
pub fn fallback_languages(country: &str) -> &'static [Lang] {
    match country {
        "AT" | "LI" => &[Lang::De],
        "CH" => &[Lang::De, Lang::Fr, Lang::It],
        "LU" => &[Lang::Fr, Lang::De],
        "MC" => &[Lang::Fr],
        "SM" | "VA" => &[Lang::It],
        "SR" => &[Lang::Nl],
        _ => &[],
    }
}

/// The languages of an `Accept-Language` header that the pages speak, most
/// preferred first. Entries with `q=0` or a broken `q` are dropped.
pub fn accepted(header: Option<&str>) -> Vec<Lang> {
    let Some(header) = header else {
        return Vec::new();
    };
    let mut weighted: Vec<(Lang, f32)> = Vec::new();
    for entry in header.split(',').take(32) {
        let mut parts = entry.split(';');
        let Some(lang) = parts.next().and_then(Lang::parse) else {
            continue;
        };
        let mut q = 1.0f32;
        for p in parts {
            if let Some(v) = p.trim().strip_prefix("q=") {
                q = v.trim().parse().unwrap_or(0.0);
            }
        }
        if q > 0.0 && q.is_finite() && !weighted.iter().any(|(l, _)| *l == lang) {
            weighted.push((lang, q));
        }
    }
    // Stable: equal weights keep the header's order.
    weighted.sort_by(|a, b| b.1.total_cmp(&a.1));
    weighted.into_iter().map(|(l, _)| l).collect()
}

/// The recipient's country decides (its number says where they live); among
/// a multilingual country's languages, and for countries we know nothing
/// about, the browser's `Accept-Language` picks; English last.
pub fn negotiate(country: &[Lang], accept_language: Option<&str>) -> Lang {
    let accepted = accepted(accept_language);
    match country.first() {
        Some(first) => accepted
            .into_iter()
            .find(|l| country.contains(l))
            .unwrap_or(*first),
        None => accepted.first().copied().unwrap_or(Lang::En),
    }
}

/// Reason codes, stored in the audit event, in the order shown.
pub const REASONS: [&str; 4] = ["not_interested", "too_many", "never_signed_up", "other"];

pub struct Texts {
    pub title: &'static str,
    pub heading: &'static str,
    pub lead: &'static str,
    pub reason_legend: &'static str,
    /// Labels for [`REASONS`], same order.
    pub reasons: [&'static str; 4],
    pub button: &'static str,
    pub done_title: &'static str,
    pub done_body: &'static str,
    pub done_note: &'static str,
    pub not_found_title: &'static str,
    pub not_found_body: &'static str,
    pub busy_title: &'static str,
    pub busy_body: &'static str,
    pub error_title: &'static str,
    pub error_body: &'static str,
}

static EN: Texts = Texts {
    title: "Unsubscribe",
    heading: "Unsubscribe from {tenant}",
    lead: "You will no longer receive marketing messages from {tenant} at {number}. Messages you need, such as codes and order updates, will still arrive.",
    reason_legend: "Why? (optional)",
    reasons: ["I'm not interested", "Too many messages", "I never signed up", "Other"],
    button: "Unsubscribe",
    done_title: "You are unsubscribed",
    done_body: "{tenant} will no longer send marketing messages to {number}.",
    done_note: "You can close this page.",
    not_found_title: "This link is not valid",
    not_found_body: "This unsubscribe link is unknown or has expired. To stop marketing messages, use the link in the latest message you received, reply STOP if the message invites you to, or contact the sender directly.",
    busy_title: "Too many requests",
    busy_body: "Please wait a moment, then try again.",
    error_title: "Something went wrong",
    error_body: "Your request could not be saved. Please try again in a few minutes.",
};

static FR: Texts = Texts {
    title: "Désinscription",
    heading: "Se désinscrire de {tenant}",
    lead: "Vous ne recevrez plus de messages marketing de {tenant} au {number}. Les messages utiles, comme les codes et le suivi de commande, continueront d'arriver.",
    reason_legend: "Pourquoi ? (facultatif)",
    reasons: ["Cela ne m'intéresse pas", "Trop de messages", "Je ne me suis jamais inscrit", "Autre"],
    button: "Me désinscrire",
    done_title: "Vous êtes désinscrit",
    done_body: "{tenant} ne vous enverra plus de messages marketing au {number}.",
    done_note: "Vous pouvez fermer cette page.",
    not_found_title: "Ce lien n'est pas valide",
    not_found_body: "Ce lien de désinscription est inconnu ou a expiré. Pour ne plus recevoir de messages marketing, utilisez le lien du dernier message reçu, répondez STOP si le message vous y invite, ou contactez directement l'expéditeur.",
    busy_title: "Trop de requêtes",
    busy_body: "Veuillez patienter un instant, puis réessayer.",
    error_title: "Une erreur est survenue",
    error_body: "Votre demande n'a pas pu être enregistrée. Veuillez réessayer dans quelques minutes.",
};

static DE: Texts = Texts {
    title: "Abmelden",
    heading: "Von {tenant} abmelden",
    lead: "Sie erhalten dann keine Werbenachrichten von {tenant} mehr an {number}. Wichtige Nachrichten wie Codes und Bestellinformationen erhalten Sie weiterhin.",
    reason_legend: "Warum? (optional)",
    reasons: ["Kein Interesse", "Zu viele Nachrichten", "Ich habe mich nie angemeldet", "Sonstiges"],
    button: "Abmelden",
    done_title: "Sie sind abgemeldet",
    done_body: "{tenant} sendet keine Werbenachrichten mehr an {number}.",
    done_note: "Sie können diese Seite schließen.",
    not_found_title: "Dieser Link ist ungültig",
    not_found_body: "Dieser Abmeldelink ist unbekannt oder abgelaufen. Um keine Werbenachrichten mehr zu erhalten, nutzen Sie den Link in der letzten Nachricht, antworten Sie mit STOP, wenn die Nachricht dazu auffordert, oder wenden Sie sich direkt an den Absender.",
    busy_title: "Zu viele Anfragen",
    busy_body: "Bitte warten Sie einen Moment und versuchen Sie es dann erneut.",
    error_title: "Ein Fehler ist aufgetreten",
    error_body: "Ihre Anfrage konnte nicht gespeichert werden. Bitte versuchen Sie es in einigen Minuten erneut.",
};

static NL: Texts = Texts {
    title: "Afmelden",
    heading: "Afmelden bij {tenant}",
    lead: "U ontvangt dan geen marketingberichten meer van {tenant} op {number}. Berichten die u nodig hebt, zoals codes en bestelupdates, blijft u ontvangen.",
    reason_legend: "Waarom? (optioneel)",
    reasons: ["Geen interesse", "Te veel berichten", "Ik heb me nooit aangemeld", "Anders"],
    button: "Afmelden",
    done_title: "U bent afgemeld",
    done_body: "{tenant} stuurt geen marketingberichten meer naar {number}.",
    done_note: "U kunt deze pagina sluiten.",
    not_found_title: "Deze link is niet geldig",
    not_found_body: "Deze afmeldlink is onbekend of verlopen. Wilt u geen marketingberichten meer ontvangen? Gebruik de link in het laatste bericht, antwoord STOP als het bericht daarom vraagt, of neem rechtstreeks contact op met de afzender.",
    busy_title: "Te veel verzoeken",
    busy_body: "Wacht even en probeer het dan opnieuw.",
    error_title: "Er ging iets mis",
    error_body: "Uw verzoek kon niet worden opgeslagen. Probeer het over een paar minuten opnieuw.",
};

static IT: Texts = Texts {
    title: "Disiscrizione",
    heading: "Disiscriviti da {tenant}",
    lead: "Non riceverai più messaggi promozionali da {tenant} al numero {number}. I messaggi necessari, come codici e aggiornamenti sugli ordini, continueranno ad arrivare.",
    reason_legend: "Perché? (facoltativo)",
    reasons: ["Non mi interessa", "Troppi messaggi", "Non mi sono mai iscritto", "Altro"],
    button: "Disiscrivimi",
    done_title: "Disiscrizione completata",
    done_body: "{tenant} non invierà più messaggi promozionali al numero {number}.",
    done_note: "Puoi chiudere questa pagina.",
    not_found_title: "Questo link non è valido",
    not_found_body: "Questo link di disiscrizione è sconosciuto o scaduto. Per non ricevere più messaggi promozionali, usa il link dell'ultimo messaggio ricevuto, rispondi STOP se il messaggio lo indica, oppure contatta direttamente il mittente.",
    busy_title: "Troppe richieste",
    busy_body: "Attendi un momento, poi riprova.",
    error_title: "Si è verificato un errore",
    error_body: "La tua richiesta non è stata salvata. Riprova tra qualche minuto.",
};

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accept_language_is_ordered_by_weight() {
        assert_eq!(
            accepted(Some("de-CH;q=0.5, nl, xx, fr;q=0.8, en;q=0")),
            vec![Lang::Nl, Lang::Fr, Lang::De]
        );
        assert_eq!(accepted(Some("*")), vec![]);
        assert_eq!(accepted(Some("fr;q=abc, it")), vec![Lang::It]);
        assert_eq!(accepted(None), vec![]);
    }

    #[test]
    fn the_country_comes_first_then_the_browser() {
        // France: French whatever the browser says.
        assert_eq!(negotiate(&[Lang::Fr], Some("en-US,en")), Lang::Fr);
        // Belgium: French unless the browser prefers Dutch.
        assert_eq!(negotiate(&[Lang::Fr, Lang::Nl], Some("nl-BE")), Lang::Nl);
        assert_eq!(negotiate(&[Lang::Fr, Lang::Nl], Some("en")), Lang::Fr);
        // Elsewhere: the browser, then English.
        assert_eq!(negotiate(&[], Some("de-DE,de;q=0.9")), Lang::De);
        assert_eq!(negotiate(&[], Some("es")), Lang::En);
        assert_eq!(negotiate(&[], None), Lang::En);
    }

    #[test]
    fn every_language_names_the_tenant_and_number() {
        for l in [Lang::En, Lang::Fr, Lang::De, Lang::Nl, Lang::It] {
            let t = l.texts();
            assert!(t.heading.contains("{tenant}"), "{l:?}");
            assert!(
                t.lead.contains("{tenant}") && t.lead.contains("{number}"),
                "{l:?}"
            );
            assert!(t.done_body.contains("{tenant}") && t.done_body.contains("{number}"));
            assert_eq!(Lang::parse(l.code()), Some(l));
        }
    }

    proptest! {
        #[test]
        fn any_header_is_fine(h in "\\PC{0,80}") {
            let _ = negotiate(&[Lang::Fr, Lang::Nl], Some(&h));
        }
    }
}
