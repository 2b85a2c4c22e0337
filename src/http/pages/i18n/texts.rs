//! The pages' texts, one `Texts` per language. Where they come from is in
//! docs/i18n.md: the English, French, German, Dutch and Italian texts came
//! with the first pages; the others are our translations, not yet reviewed
//! by native speakers. Keep `{tenant}` and `{number}` where the sentence
//! needs them; `STOP` stays in Latin letters, since that is what to text.

use super::{Lang, Texts};

pub(super) fn of(lang: Lang) -> &'static Texts {
    match lang {
        Lang::En => &EN,
        Lang::Fr => &FR,
        Lang::De => &DE,
        Lang::Nl => &NL,
        Lang::It => &IT,
        Lang::Es => &ES,
        Lang::Pt => &PT,
        Lang::Pl => &PL,
        Lang::Ro => &RO,
        Lang::Sv => &SV,
        Lang::Da => &DA,
        Lang::Fi => &FI,
        Lang::Cs => &CS,
        Lang::Sk => &SK,
        Lang::Hu => &HU,
        Lang::El => &EL,
        Lang::Bg => &BG,
        Lang::Hr => &HR,
        Lang::Sl => &SL,
        Lang::Et => &ET,
        Lang::Lv => &LV,
        Lang::Lt => &LT,
        Lang::Tr => &TR,
        Lang::Id => &ID,
        Lang::Ru => &RU,
        Lang::Ar => &AR,
        Lang::Hi => &HI,
        Lang::ZhHans => &ZH_HANS,
        Lang::ZhHant => &ZH_HANT,
        Lang::Ja => &JA,
        Lang::Ko => &KO,
    }
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

/// Spanish, for Spain and Latin America: `usted`, and words both use.
static ES: Texts = Texts {
    title: "Darse de baja",
    heading: "Darse de baja de {tenant}",
    lead: "Dejará de recibir mensajes promocionales de {tenant} en el número {number}. Los mensajes necesarios, como códigos y avisos sobre sus pedidos, seguirán llegando.",
    reason_legend: "¿Por qué? (opcional)",
    reasons: ["No me interesa", "Demasiados mensajes", "Nunca me suscribí", "Otro motivo"],
    button: "Darme de baja",
    done_title: "Se ha dado de baja",
    done_body: "{tenant} ya no enviará mensajes promocionales al número {number}.",
    done_note: "Puede cerrar esta página.",
    not_found_title: "Este enlace no es válido",
    not_found_body: "Este enlace de baja no existe o ha caducado. Para dejar de recibir mensajes promocionales, use el enlace del último mensaje que recibió, responda STOP si el mensaje lo indica o contacte directamente con el remitente.",
    busy_title: "Demasiadas solicitudes",
    busy_body: "Espere un momento y vuelva a intentarlo.",
    error_title: "Algo salió mal",
    error_body: "No se pudo guardar su solicitud. Vuelva a intentarlo en unos minutos.",
};

/// Portuguese, for Portugal, Brazil and Africa: wording both norms accept.
static PT: Texts = Texts {
    title: "Cancelar inscrição",
    heading: "Deixar de receber mensagens de {tenant}",
    lead: "Deixará de receber mensagens promocionais de {tenant} no número {number}. As mensagens necessárias, como códigos e informações sobre compras, continuarão a chegar.",
    reason_legend: "Motivo (opcional)",
    reasons: ["Não tenho interesse", "Muitas mensagens", "Nunca me inscrevi", "Outro"],
    button: "Cancelar inscrição",
    done_title: "Inscrição cancelada",
    done_body: "{tenant} não enviará mais mensagens promocionais para o número {number}.",
    done_note: "Pode fechar esta página.",
    not_found_title: "Este link não é válido",
    not_found_body: "Este link de cancelamento é desconhecido ou expirou. Para deixar de receber mensagens promocionais, use o link da última mensagem recebida, responda STOP se a mensagem o indicar ou fale diretamente com o remetente.",
    busy_title: "Muitas solicitações",
    busy_body: "Aguarde um momento e tente novamente.",
    error_title: "Ocorreu um erro",
    error_body: "Não foi possível concluir a sua solicitação. Tente novamente dentro de alguns minutos.",
};

/// Polish.
static PL: Texts = Texts {
    title: "Wypisz się",
    heading: "Wypisz się z wiadomości {tenant}",
    lead: "Nie będziesz już otrzymywać wiadomości marketingowych od {tenant} na numer {number}. Potrzebne wiadomości, takie jak kody i informacje o zamówieniach, nadal będą przychodzić.",
    reason_legend: "Dlaczego? (opcjonalnie)",
    reasons: ["To mnie nie interesuje", "Za dużo wiadomości", "Nigdy się nie zapisywałem/am", "Inny powód"],
    button: "Wypisz mnie",
    done_title: "Wypisano pomyślnie",
    done_body: "{tenant} nie będzie już wysyłać wiadomości marketingowych na numer {number}.",
    done_note: "Możesz zamknąć tę stronę.",
    not_found_title: "Ten link jest nieprawidłowy",
    not_found_body: "Ten link do wypisania się jest nieznany lub wygasł. Aby nie otrzymywać wiadomości marketingowych, użyj linku z ostatniej otrzymanej wiadomości, odpowiedz STOP, jeśli wiadomość to umożliwia, lub skontaktuj się bezpośrednio z nadawcą.",
    busy_title: "Zbyt wiele żądań",
    busy_body: "Poczekaj chwilę i spróbuj ponownie.",
    error_title: "Coś poszło nie tak",
    error_body: "Nie udało się zapisać Twojej prośby. Spróbuj ponownie za kilka minut.",
};

/// Romanian (with ș and ț, comma below).
static RO: Texts = Texts {
    title: "Dezabonare",
    heading: "Dezabonare de la {tenant}",
    lead: "Nu veți mai primi mesaje de marketing de la {tenant} pe numărul {number}. Mesajele necesare, precum codurile și informațiile despre comenzi, vor sosi în continuare.",
    reason_legend: "De ce? (opțional)",
    reasons: ["Nu mă interesează", "Prea multe mesaje", "Nu m-am abonat niciodată", "Alt motiv"],
    button: "Dezabonează-mă",
    done_title: "V-ați dezabonat",
    done_body: "{tenant} nu vă va mai trimite mesaje de marketing pe numărul {number}.",
    done_note: "Puteți închide această pagină.",
    not_found_title: "Acest link nu este valid",
    not_found_body: "Acest link de dezabonare este necunoscut sau a expirat. Pentru a nu mai primi mesaje de marketing, folosiți linkul din ultimul mesaj primit, răspundeți STOP dacă mesajul vă invită să o faceți sau contactați direct expeditorul.",
    busy_title: "Prea multe cereri",
    busy_body: "Vă rugăm să așteptați puțin, apoi încercați din nou.",
    error_title: "A apărut o eroare",
    error_body: "Cererea dvs. nu a putut fi salvată. Vă rugăm să încercați din nou peste câteva minute.",
};

/// Swedish.
static SV: Texts = Texts {
    title: "Avregistrera",
    heading: "Avregistrera dig från {tenant}",
    lead: "Du får inte längre marknadsföringsmeddelanden från {tenant} till {number}. Meddelanden du behöver, som koder och orderuppdateringar, kommer fortfarande fram.",
    reason_legend: "Varför? (valfritt)",
    reasons: ["Jag är inte intresserad", "För många meddelanden", "Jag har aldrig registrerat mig", "Annat"],
    button: "Avregistrera mig",
    done_title: "Du är avregistrerad",
    done_body: "{tenant} skickar inte längre marknadsföringsmeddelanden till {number}.",
    done_note: "Du kan stänga den här sidan.",
    not_found_title: "Länken är inte giltig",
    not_found_body: "Den här avregistreringslänken är okänd eller har gått ut. För att slippa marknadsföringsmeddelanden kan du använda länken i det senaste meddelandet du fick, svara STOP om meddelandet ber dig göra det, eller kontakta avsändaren direkt.",
    busy_title: "För många förfrågningar",
    busy_body: "Vänta en stund och försök sedan igen.",
    error_title: "Något gick fel",
    error_body: "Din begäran kunde inte sparas. Försök igen om några minuter.",
};

/// Danish.
static DA: Texts = Texts {
    title: "Afmeld",
    heading: "Afmeld beskeder fra {tenant}",
    lead: "Du modtager ikke længere markedsføringsbeskeder fra {tenant} på {number}. Beskeder, du har brug for, såsom koder og ordreopdateringer, kommer stadig frem.",
    reason_legend: "Hvorfor? (valgfrit)",
    reasons: ["Jeg er ikke interesseret", "For mange beskeder", "Jeg har aldrig tilmeldt mig", "Andet"],
    button: "Afmeld mig",
    done_title: "Du er afmeldt",
    done_body: "{tenant} sender ikke længere markedsføringsbeskeder til {number}.",
    done_note: "Du kan lukke denne side.",
    not_found_title: "Linket er ikke gyldigt",
    not_found_body: "Dette afmeldingslink er ukendt eller udløbet. For at undgå markedsføringsbeskeder kan du bruge linket i den seneste besked, du har modtaget, svare STOP, hvis beskeden opfordrer til det, eller kontakte afsenderen direkte.",
    busy_title: "For mange forespørgsler",
    busy_body: "Vent et øjeblik, og prøv igen.",
    error_title: "Noget gik galt",
    error_body: "Din anmodning kunne ikke gemmes. Prøv igen om et par minutter.",
};

/// Finnish. The tenant's name follows "lähettäjältä" (from the sender) so that it never needs a case ending.
static FI: Texts = Texts {
    title: "Peruuta tilaus",
    heading: "Peruuta markkinointiviestit lähettäjältä {tenant}",
    lead: "Et saa enää markkinointiviestejä lähettäjältä {tenant} numeroon {number}. Tarpeelliset viestit, kuten koodit ja tilausten tiedot, tulevat edelleen perille.",
    reason_legend: "Miksi? (vapaaehtoinen)",
    reasons: ["En ole kiinnostunut", "Liikaa viestejä", "En ole koskaan tilannut viestejä", "Muu syy"],
    button: "Peruuta tilaus",
    done_title: "Tilaus on peruttu",
    done_body: "Lähettäjä {tenant} ei enää lähetä markkinointiviestejä numeroon {number}.",
    done_note: "Voit sulkea tämän sivun.",
    not_found_title: "Linkki ei ole voimassa",
    not_found_body: "Tämä peruutuslinkki on tuntematon tai vanhentunut. Jos et halua markkinointiviestejä, käytä viimeisimmän saamasi viestin linkkiä, vastaa STOP, jos viestissä neuvotaan niin, tai ota yhteyttä suoraan lähettäjään.",
    busy_title: "Liian monta pyyntöä",
    busy_body: "Odota hetki ja yritä sitten uudelleen.",
    error_title: "Jokin meni vikaan",
    error_body: "Pyyntöäsi ei voitu tallentaa. Yritä uudelleen muutaman minuutin kuluttua.",
};

/// Czech.
static CS: Texts = Texts {
    title: "Odhlášení",
    heading: "Odhlášení ze zpráv od {tenant}",
    lead: "Už nebudete dostávat marketingové zprávy od {tenant} na číslo {number}. Potřebné zprávy, například kódy a informace o objednávkách, budou chodit dál.",
    reason_legend: "Proč? (nepovinné)",
    reasons: ["Nemám zájem", "Příliš mnoho zpráv", "Nikdy jsem se nepřihlásil(a)", "Jiný důvod"],
    button: "Odhlásit se",
    done_title: "Jste odhlášeni",
    done_body: "{tenant} vám už nebude posílat marketingové zprávy na číslo {number}.",
    done_note: "Tuto stránku můžete zavřít.",
    not_found_title: "Tento odkaz není platný",
    not_found_body: "Tento odhlašovací odkaz je neznámý nebo vypršel. Chcete-li přestat dostávat marketingové zprávy, použijte odkaz v poslední přijaté zprávě, odpovězte STOP, pokud vás k tomu zpráva vyzývá, nebo kontaktujte přímo odesílatele.",
    busy_title: "Příliš mnoho požadavků",
    busy_body: "Chvíli počkejte a zkuste to znovu.",
    error_title: "Něco se pokazilo",
    error_body: "Váš požadavek se nepodařilo uložit. Zkuste to prosím znovu za několik minut.",
};

/// Slovak.
static SK: Texts = Texts {
    title: "Odhlásenie",
    heading: "Odhlásenie zo správ od {tenant}",
    lead: "Už nebudete dostávať marketingové správy od {tenant} na číslo {number}. Potrebné správy, napríklad kódy a informácie o objednávkach, budú naďalej prichádzať.",
    reason_legend: "Prečo? (nepovinné)",
    reasons: ["Nemám záujem", "Príliš veľa správ", "Nikdy som sa neprihlásil(a)", "Iný dôvod"],
    button: "Odhlásiť sa",
    done_title: "Ste odhlásení",
    done_body: "{tenant} vám už nebude posielať marketingové správy na číslo {number}.",
    done_note: "Túto stránku môžete zavrieť.",
    not_found_title: "Tento odkaz nie je platný",
    not_found_body: "Tento odhlasovací odkaz je neznámy alebo jeho platnosť vypršala. Ak už nechcete dostávať marketingové správy, použite odkaz v poslednej prijatej správe, odpovedzte STOP, ak vás na to správa vyzýva, alebo kontaktujte priamo odosielateľa.",
    busy_title: "Príliš veľa požiadaviek",
    busy_body: "Chvíľu počkajte a skúste to znova.",
    error_title: "Niečo sa pokazilo",
    error_body: "Vašu požiadavku sa nepodarilo uložiť. Skúste to znova o niekoľko minút.",
};

/// Hungarian. "a(z)" before the tenant's name and the number, as Hungarian forms do when the next word is unknown.
static HU: Texts = Texts {
    title: "Leiratkozás",
    heading: "Leiratkozás: {tenant}",
    lead: "Ezután nem kap marketingüzeneteket a(z) {tenant} feladótól a(z) {number} számra. A szükséges üzenetek, például a kódok és a rendelési értesítések, továbbra is megérkeznek.",
    reason_legend: "Miért? (nem kötelező)",
    reasons: ["Nem érdekel", "Túl sok üzenet", "Soha nem iratkoztam fel", "Egyéb"],
    button: "Leiratkozom",
    done_title: "Sikeresen leiratkozott",
    done_body: "A(z) {tenant} többé nem küld marketingüzenetet a(z) {number} számra.",
    done_note: "Bezárhatja ezt az oldalt.",
    not_found_title: "Ez a link nem érvényes",
    not_found_body: "Ez a leiratkozási link ismeretlen vagy lejárt. Ha nem szeretne marketingüzeneteket kapni, használja a legutóbb kapott üzenetben lévő linket, válaszoljon STOP szóval, ha az üzenet erre kéri, vagy forduljon közvetlenül a feladóhoz.",
    busy_title: "Túl sok kérés",
    busy_body: "Kérjük, várjon egy kicsit, majd próbálja újra.",
    error_title: "Hiba történt",
    error_body: "A kérését nem sikerült menteni. Kérjük, próbálja újra néhány perc múlva.",
};

/// Greek. The tenant's name follows "αποστολέα" (sender) so that no article has to agree with it.
static EL: Texts = Texts {
    title: "Διαγραφή",
    heading: "Διαγραφή από τα μηνύματα του αποστολέα {tenant}",
    lead: "Δεν θα λαμβάνετε πλέον διαφημιστικά μηνύματα από τον αποστολέα {tenant} στον αριθμό {number}. Τα απαραίτητα μηνύματα, όπως κωδικοί και ενημερώσεις παραγγελιών, θα συνεχίσουν να φτάνουν.",
    reason_legend: "Γιατί; (προαιρετικό)",
    reasons: ["Δεν με ενδιαφέρει", "Πάρα πολλά μηνύματα", "Δεν εγγράφηκα ποτέ", "Άλλο"],
    button: "Διαγραφή",
    done_title: "Η διαγραφή σας ολοκληρώθηκε",
    done_body: "Ο αποστολέας {tenant} δεν θα στέλνει πλέον διαφημιστικά μηνύματα στον αριθμό {number}.",
    done_note: "Μπορείτε να κλείσετε αυτή τη σελίδα.",
    not_found_title: "Αυτός ο σύνδεσμος δεν είναι έγκυρος",
    not_found_body: "Αυτός ο σύνδεσμος διαγραφής είναι άγνωστος ή έχει λήξει. Για να μη λαμβάνετε διαφημιστικά μηνύματα, χρησιμοποιήστε τον σύνδεσμο του τελευταίου μηνύματος που λάβατε, απαντήστε STOP αν το μήνυμα σας το προτείνει ή επικοινωνήστε απευθείας με τον αποστολέα.",
    busy_title: "Πάρα πολλά αιτήματα",
    busy_body: "Περιμένετε λίγο και δοκιμάστε ξανά.",
    error_title: "Κάτι πήγε στραβά",
    error_body: "Δεν ήταν δυνατή η αποθήκευση του αιτήματός σας. Δοκιμάστε ξανά σε λίγα λεπτά.",
};

/// Bulgarian.
static BG: Texts = Texts {
    title: "Отписване",
    heading: "Отписване от съобщенията на {tenant}",
    lead: "Повече няма да получавате рекламни съобщения от {tenant} на номер {number}. Нужните съобщения, като кодове и известия за поръчки, ще продължат да пристигат.",
    reason_legend: "Защо? (по желание)",
    reasons: ["Не ме интересува", "Твърде много съобщения", "Никога не съм се абонирал(а)", "Друго"],
    button: "Отпиши ме",
    done_title: "Отписахте се",
    done_body: "{tenant} повече няма да изпраща рекламни съобщения на номер {number}.",
    done_note: "Можете да затворите тази страница.",
    not_found_title: "Тази връзка не е валидна",
    not_found_body: "Тази връзка за отписване е непозната или е изтекла. За да спрете рекламните съобщения, използвайте връзката от последното получено съобщение, отговорете STOP, ако съобщението ви приканва да го направите, или се свържете директно с подателя.",
    busy_title: "Твърде много заявки",
    busy_body: "Моля, изчакайте малко и опитайте отново.",
    error_title: "Нещо се обърка",
    error_body: "Заявката ви не можа да бъде запазена. Моля, опитайте отново след няколко минути.",
};

/// Croatian. The tenant's name follows "pošiljatelja" (of the sender) so that it never needs a case ending.
static HR: Texts = Texts {
    title: "Odjava",
    heading: "Odjava od poruka pošiljatelja {tenant}",
    lead: "Više nećete primati marketinške poruke pošiljatelja {tenant} na broj {number}. Potrebne poruke, poput kodova i obavijesti o narudžbama, i dalje će stizati.",
    reason_legend: "Zašto? (neobavezno)",
    reasons: ["Ne zanima me", "Previše poruka", "Nikada se nisam prijavio/la", "Ostalo"],
    button: "Odjavi me",
    done_title: "Odjavljeni ste",
    done_body: "{tenant} vam više neće slati marketinške poruke na broj {number}.",
    done_note: "Možete zatvoriti ovu stranicu.",
    not_found_title: "Ova poveznica nije valjana",
    not_found_body: "Ova poveznica za odjavu nepoznata je ili je istekla. Da biste prestali primati marketinške poruke, upotrijebite poveznicu iz posljednje primljene poruke, odgovorite STOP ako vas poruka na to upućuje ili se izravno obratite pošiljatelju.",
    busy_title: "Previše zahtjeva",
    busy_body: "Pričekajte trenutak pa pokušajte ponovno.",
    error_title: "Nešto nije u redu",
    error_body: "Vaš zahtjev nije moguće spremiti. Pokušajte ponovno za nekoliko minuta.",
};

/// Slovenian. The tenant's name follows "pošiljatelja" (of the sender) so that it never needs a case ending.
static SL: Texts = Texts {
    title: "Odjava",
    heading: "Odjava od sporočil pošiljatelja {tenant}",
    lead: "Ne boste več prejemali trženjskih sporočil pošiljatelja {tenant} na številko {number}. Potrebna sporočila, kot so kode in obvestila o naročilih, boste še naprej prejemali.",
    reason_legend: "Zakaj? (neobvezno)",
    reasons: ["Ne zanima me", "Preveč sporočil", "Nikoli se nisem prijavil(a)", "Drugo"],
    button: "Odjavi me",
    done_title: "Odjavljeni ste",
    done_body: "Pošiljatelj {tenant} vam ne bo več pošiljal trženjskih sporočil na številko {number}.",
    done_note: "To stran lahko zaprete.",
    not_found_title: "Ta povezava ni veljavna",
    not_found_body: "Ta povezava za odjavo je neznana ali je potekla. Če ne želite več prejemati trženjskih sporočil, uporabite povezavo iz zadnjega prejetega sporočila, odgovorite STOP, če vas sporočilo k temu povabi, ali se neposredno obrnite na pošiljatelja.",
    busy_title: "Preveč zahtev",
    busy_body: "Počakajte trenutek in poskusite znova.",
    error_title: "Prišlo je do napake",
    error_body: "Vaše zahteve ni bilo mogoče shraniti. Poskusite znova čez nekaj minut.",
};

/// Estonian (informal "sa", as Estonian marketing usually is). The tenant's name follows "saatja" (sender) so that it never needs a case ending.
static ET: Texts = Texts {
    title: "Tellimusest loobumine",
    heading: "Loobu saatja {tenant} sõnumitest",
    lead: "Sa ei saa enam saatjalt {tenant} turundussõnumeid numbrile {number}. Vajalikud sõnumid, näiteks koodid ja tellimuste teated, jõuavad sinuni endiselt.",
    reason_legend: "Miks? (valikuline)",
    reasons: ["Mind ei huvita", "Liiga palju sõnumeid", "Ma pole kunagi liitunud", "Muu"],
    button: "Loobu",
    done_title: "Oled tellimusest loobunud",
    done_body: "Saatja {tenant} ei saada enam turundussõnumeid numbrile {number}.",
    done_note: "Võid selle lehe sulgeda.",
    not_found_title: "See link ei kehti",
    not_found_body: "See loobumislink on tundmatu või aegunud. Kui sa ei soovi turundussõnumeid, kasuta viimati saadud sõnumis olevat linki, vasta STOP, kui sõnum seda soovitab, või võta otse ühendust saatjaga.",
    busy_title: "Liiga palju päringuid",
    busy_body: "Oota hetk ja proovi siis uuesti.",
    error_title: "Midagi läks valesti",
    error_body: "Sinu päringut ei õnnestunud salvestada. Proovi mõne minuti pärast uuesti.",
};

/// Latvian. The tenant's name follows "sūtītāja" (of the sender) so that it never needs a case ending.
static LV: Texts = Texts {
    title: "Atteikšanās",
    heading: "Atteikties no sūtītāja {tenant} ziņām",
    lead: "Jūs vairs nesaņemsiet mārketinga ziņas no sūtītāja {tenant} uz numuru {number}. Nepieciešamās ziņas, piemēram, kodi un paziņojumi par pasūtījumiem, joprojām tiks piegādātas.",
    reason_legend: "Kāpēc? (nav obligāti)",
    reasons: ["Mani tas neinteresē", "Pārāk daudz ziņu", "Es nekad neesmu pieteicies(-usies)", "Cits iemesls"],
    button: "Atteikties",
    done_title: "Atteikums ir reģistrēts",
    done_body: "Sūtītājs {tenant} vairs nesūtīs mārketinga ziņas uz numuru {number}.",
    done_note: "Varat aizvērt šo lapu.",
    not_found_title: "Šī saite nav derīga",
    not_found_body: "Šī atteikšanās saite nav zināma vai tai ir beidzies derīguma termiņš. Lai vairs nesaņemtu mārketinga ziņas, izmantojiet saiti pēdējā saņemtajā ziņā, atbildiet STOP, ja ziņā tas ir norādīts, vai sazinieties tieši ar sūtītāju.",
    busy_title: "Pārāk daudz pieprasījumu",
    busy_body: "Lūdzu, brīdi uzgaidiet un mēģiniet vēlreiz.",
    error_title: "Radās kļūda",
    error_body: "Jūsu pieprasījumu neizdevās saglabāt. Lūdzu, mēģiniet vēlreiz pēc dažām minūtēm.",
};

/// Lithuanian. The tenant's name follows "siuntėjo" (of the sender) so that it never needs a case ending.
static LT: Texts = Texts {
    title: "Prenumeratos atsisakymas",
    heading: "Atsisakyti siuntėjo {tenant} žinučių",
    lead: "Nebegausite rinkodaros žinučių iš siuntėjo {tenant} numeriu {number}. Reikalingos žinutės, pavyzdžiui, kodai ir pranešimai apie užsakymus, ir toliau bus pristatomos.",
    reason_legend: "Kodėl? (neprivaloma)",
    reasons: ["Manęs tai nedomina", "Per daug žinučių", "Niekada neužsiprenumeravau", "Kita"],
    button: "Atsisakyti",
    done_title: "Prenumerata atšaukta",
    done_body: "Siuntėjas {tenant} nebesiųs rinkodaros žinučių numeriu {number}.",
    done_note: "Galite uždaryti šį puslapį.",
    not_found_title: "Ši nuoroda negalioja",
    not_found_body: "Ši atsisakymo nuoroda nežinoma arba nebegalioja. Jei nebenorite gauti rinkodaros žinučių, naudokite nuorodą paskutinėje gautoje žinutėje, atsakykite STOP, jei žinutėje to prašoma, arba susisiekite tiesiogiai su siuntėju.",
    busy_title: "Per daug užklausų",
    busy_body: "Palaukite akimirką ir bandykite dar kartą.",
    error_title: "Įvyko klaida",
    error_body: "Jūsų užklausos nepavyko išsaugoti. Bandykite dar kartą po kelių minučių.",
};

/// Turkish. Suffixes attach to the words after the tenant's name and the number, never to them.
static TR: Texts = Texts {
    title: "Abonelikten çık",
    heading: "{tenant} iletilerinden çık",
    lead: "Artık {number} numarasına {tenant} tarafından pazarlama iletisi gönderilmeyecek. Doğrulama kodları ve sipariş bildirimleri gibi gerekli iletiler gelmeye devam edecek.",
    reason_legend: "Neden? (isteğe bağlı)",
    reasons: ["İlgilenmiyorum", "Çok fazla ileti", "Hiç kaydolmadım", "Diğer"],
    button: "Abonelikten çık",
    done_title: "Abonelikten çıktınız",
    done_body: "{tenant} artık {number} numarasına pazarlama iletisi göndermeyecek.",
    done_note: "Bu sayfayı kapatabilirsiniz.",
    not_found_title: "Bu bağlantı geçerli değil",
    not_found_body: "Bu abonelikten çıkma bağlantısı bilinmiyor veya süresi dolmuş. Pazarlama iletilerini durdurmak için aldığınız son iletideki bağlantıyı kullanın, ileti sizi buna yönlendiriyorsa STOP yanıtını gönderin veya doğrudan gönderenle iletişime geçin.",
    busy_title: "Çok fazla istek",
    busy_body: "Lütfen biraz bekleyip yeniden deneyin.",
    error_title: "Bir sorun oluştu",
    error_body: "İsteğiniz kaydedilemedi. Lütfen birkaç dakika sonra yeniden deneyin.",
};

/// Indonesian.
static ID: Texts = Texts {
    title: "Berhenti berlangganan",
    heading: "Berhenti berlangganan pesan {tenant}",
    lead: "Anda tidak akan lagi menerima pesan pemasaran dari {tenant} di nomor {number}. Pesan yang Anda perlukan, seperti kode dan info pesanan, tetap akan dikirim.",
    reason_legend: "Mengapa? (opsional)",
    reasons: ["Saya tidak tertarik", "Terlalu banyak pesan", "Saya tidak pernah mendaftar", "Lainnya"],
    button: "Berhenti berlangganan",
    done_title: "Anda telah berhenti berlangganan",
    done_body: "{tenant} tidak akan lagi mengirim pesan pemasaran ke nomor {number}.",
    done_note: "Anda dapat menutup halaman ini.",
    not_found_title: "Tautan ini tidak valid",
    not_found_body: "Tautan berhenti berlangganan ini tidak dikenal atau sudah kedaluwarsa. Untuk berhenti menerima pesan pemasaran, gunakan tautan di pesan terakhir yang Anda terima, balas STOP jika pesan tersebut memintanya, atau hubungi pengirim secara langsung.",
    busy_title: "Terlalu banyak permintaan",
    busy_body: "Harap tunggu sebentar, lalu coba lagi.",
    error_title: "Terjadi kesalahan",
    error_body: "Permintaan Anda tidak dapat disimpan. Silakan coba lagi dalam beberapa menit.",
};

/// Russian.
static RU: Texts = Texts {
    title: "Отписка",
    heading: "Отписаться от сообщений {tenant}",
    lead: "Вы больше не будете получать рекламные сообщения от {tenant} на номер {number}. Нужные сообщения, например коды и уведомления о заказах, будут приходить как прежде.",
    reason_legend: "Почему? (необязательно)",
    reasons: ["Мне это неинтересно", "Слишком много сообщений", "Я не подписывался(-ась)", "Другое"],
    button: "Отписаться",
    done_title: "Вы отписались",
    done_body: "{tenant} больше не будет отправлять рекламные сообщения на номер {number}.",
    done_note: "Эту страницу можно закрыть.",
    not_found_title: "Ссылка недействительна",
    not_found_body: "Эта ссылка для отписки неизвестна или устарела. Чтобы не получать рекламные сообщения, воспользуйтесь ссылкой из последнего полученного сообщения, ответьте STOP, если сообщение это предлагает, или свяжитесь с отправителем напрямую.",
    busy_title: "Слишком много запросов",
    busy_body: "Подождите немного и попробуйте снова.",
    error_title: "Что-то пошло не так",
    error_body: "Не удалось сохранить ваш запрос. Попробуйте ещё раз через несколько минут.",
};

/// Arabic (Modern Standard); the page is laid out right to left.
static AR: Texts = Texts {
    title: "إلغاء الاشتراك",
    heading: "إلغاء الاشتراك في رسائل {tenant}",
    lead: "لن تتلقى بعد الآن رسائل تسويقية من {tenant} على الرقم {number}. ستستمر الرسائل الضرورية، مثل الرموز وتحديثات الطلبات، في الوصول إليك.",
    reason_legend: "لماذا؟ (اختياري)",
    reasons: ["لست مهتمًا", "رسائل كثيرة جدًا", "لم أشترك أبدًا", "سبب آخر"],
    button: "إلغاء الاشتراك",
    done_title: "تم إلغاء اشتراكك",
    done_body: "لن يرسل {tenant} بعد الآن رسائل تسويقية إلى الرقم {number}.",
    done_note: "يمكنك إغلاق هذه الصفحة.",
    not_found_title: "هذا الرابط غير صالح",
    not_found_body: "رابط إلغاء الاشتراك هذا غير معروف أو انتهت صلاحيته. لإيقاف الرسائل التسويقية، استخدم الرابط الموجود في آخر رسالة تلقيتها، أو أرسل STOP ردًا إذا طلبت منك الرسالة ذلك، أو تواصل مع المرسل مباشرة.",
    busy_title: "طلبات كثيرة جدًا",
    busy_body: "يرجى الانتظار قليلًا ثم المحاولة مرة أخرى.",
    error_title: "حدث خطأ ما",
    error_body: "تعذّر حفظ طلبك. يرجى المحاولة مرة أخرى بعد بضع دقائق.",
};

/// Hindi (Devanagari).
static HI: Texts = Texts {
    title: "सदस्यता रद्द करें",
    heading: "{tenant} के संदेशों की सदस्यता रद्द करें",
    lead: "अब आपको {number} पर {tenant} से मार्केटिंग संदेश नहीं मिलेंगे। ज़रूरी संदेश, जैसे कोड और ऑर्डर की जानकारी, आते रहेंगे।",
    reason_legend: "क्यों? (वैकल्पिक)",
    reasons: ["मुझे रुचि नहीं है", "बहुत ज़्यादा संदेश", "मैंने कभी सदस्यता नहीं ली", "अन्य"],
    button: "सदस्यता रद्द करें",
    done_title: "आपकी सदस्यता रद्द हो गई है",
    done_body: "{tenant} अब {number} पर मार्केटिंग संदेश नहीं भेजेगा।",
    done_note: "आप यह पेज बंद कर सकते हैं।",
    not_found_title: "यह लिंक मान्य नहीं है",
    not_found_body: "यह सदस्यता रद्द करने का लिंक अज्ञात है या इसकी अवधि समाप्त हो गई है। मार्केटिंग संदेश बंद करने के लिए, पिछले प्राप्त संदेश में दिए गए लिंक का उपयोग करें, अगर संदेश में कहा गया हो तो STOP लिखकर जवाब दें, या सीधे भेजने वाले से संपर्क करें।",
    busy_title: "बहुत सारे अनुरोध",
    busy_body: "कृपया थोड़ी देर रुकें, फिर दोबारा कोशिश करें।",
    error_title: "कुछ गड़बड़ हो गई",
    error_body: "आपका अनुरोध सहेजा नहीं जा सका। कृपया कुछ मिनट बाद दोबारा कोशिश करें।",
};

/// Simplified Chinese (mainland China, Singapore).
static ZH_HANS: Texts = Texts {
    title: "退订",
    heading: "退订 {tenant} 的消息",
    lead: "您将不再在 {number} 收到 {tenant} 的营销短信。验证码、订单通知等必要消息仍会照常发送。",
    reason_legend: "原因（选填）",
    reasons: ["我不感兴趣", "消息太多", "我从未订阅", "其他"],
    button: "退订",
    done_title: "您已退订",
    done_body: "{tenant} 将不再向 {number} 发送营销短信。",
    done_note: "您可以关闭此页面。",
    not_found_title: "此链接无效",
    not_found_body: "此退订链接不存在或已过期。如需停止接收营销短信，请使用您最近收到的短信中的链接；如短信有提示，也可回复 STOP；或直接联系发送方。",
    busy_title: "请求过多",
    busy_body: "请稍候片刻再试。",
    error_title: "出错了",
    error_body: "您的请求未能保存，请过几分钟再试。",
};

/// Traditional Chinese (Taiwan, Hong Kong, Macao), with Taiwan's usual words (簡訊, 連結).
static ZH_HANT: Texts = Texts {
    title: "取消訂閱",
    heading: "取消訂閱 {tenant} 的訊息",
    lead: "您將不會再於 {number} 收到 {tenant} 的行銷簡訊。驗證碼、訂單通知等必要訊息仍會照常傳送。",
    reason_legend: "原因（選填）",
    reasons: ["我沒有興趣", "訊息太多", "我從未訂閱", "其他"],
    button: "取消訂閱",
    done_title: "您已取消訂閱",
    done_body: "{tenant} 將不會再傳送行銷簡訊至 {number}。",
    done_note: "您可以關閉此頁面。",
    not_found_title: "此連結無效",
    not_found_body: "此取消訂閱連結不存在或已過期。如要停止接收行銷簡訊，請使用您最近收到的簡訊中的連結；如簡訊有提示，也可回覆 STOP；或直接聯絡傳送者。",
    busy_title: "要求過多",
    busy_body: "請稍候片刻再試。",
    error_title: "發生錯誤",
    error_body: "無法儲存您的要求，請於幾分鐘後再試。",
};

/// Japanese (polite form).
static JA: Texts = Texts {
    title: "配信停止",
    heading: "{tenant} からの配信停止",
    lead: "{number} 宛ての {tenant} からのマーケティングメッセージは今後届かなくなります。認証コードや注文のお知らせなど、必要なメッセージは引き続き届きます。",
    reason_legend: "理由（任意）",
    reasons: ["興味がない", "メッセージが多すぎる", "登録した覚えがない", "その他"],
    button: "配信を停止する",
    done_title: "配信を停止しました",
    done_body: "{tenant} は今後 {number} にマーケティングメッセージを送信しません。",
    done_note: "このページは閉じてかまいません。",
    not_found_title: "このリンクは無効です",
    not_found_body: "この配信停止リンクは存在しないか、有効期限が切れています。マーケティングメッセージを停止するには、最後に受け取ったメッセージ内のリンクを使うか、メッセージに案内がある場合は STOP と返信するか、送信者に直接お問い合わせください。",
    busy_title: "リクエストが多すぎます",
    busy_body: "しばらく待ってから、もう一度お試しください。",
    error_title: "エラーが発生しました",
    error_body: "リクエストを保存できませんでした。数分後にもう一度お試しください。",
};

/// Korean (polite form).
static KO: Texts = Texts {
    title: "수신 거부",
    heading: "{tenant} 메시지 수신 거부",
    lead: "이제 {number} 번호로 {tenant}의 마케팅 메시지를 받지 않습니다. 인증 코드, 주문 알림 등 필요한 메시지는 계속 받게 됩니다.",
    reason_legend: "이유 (선택 사항)",
    reasons: ["관심이 없습니다", "메시지가 너무 많습니다", "가입한 적이 없습니다", "기타"],
    button: "수신 거부",
    done_title: "수신 거부되었습니다",
    done_body: "{tenant}에서 더 이상 {number} 번호로 마케팅 메시지를 보내지 않습니다.",
    done_note: "이 페이지를 닫으셔도 됩니다.",
    not_found_title: "유효하지 않은 링크입니다",
    not_found_body: "이 수신 거부 링크는 알 수 없거나 만료되었습니다. 마케팅 메시지를 그만 받으려면 최근에 받은 메시지의 링크를 사용하거나, 메시지에 안내가 있으면 STOP으로 답장하거나, 발신자에게 직접 문의하세요.",
    busy_title: "요청이 너무 많습니다",
    busy_body: "잠시 후 다시 시도해 주세요.",
    error_title: "문제가 발생했습니다",
    error_body: "요청을 저장하지 못했습니다. 몇 분 후에 다시 시도해 주세요.",
};
