//! espace-ps identity model: who the signed-in professional is (national
//! identifier, RPPS, names, professions and savoir-faire) and how they
//! signed in. One model for the proxy, the access engine (which builds its
//! Cedar principal from it), the dev identity provider and the demo data.
//! No I/O.
//!
//! Pro Santé Connect's `SubjectNameID` is the national identifier: `8` + the
//! 11-digit RPPS number (the last digit a Luhn check digit), `0` + an ADELI
//! number, or other prefixes, which are kept without an RPPS.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How the professional signed in. Its snake_case name (`psc_card`…) is the
/// Cedar enum value `EspacePs::LoginMethod::"<name>"` and the serialized form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginMethod {
    /// Pro Santé Connect with a physical CPS card.
    PscCard,
    /// Pro Santé Connect with the e-CPS mobile app.
    PscApp,
    /// Single sign-on from Hopital Manager.
    HmSso,
}

impl LoginMethod {
    /// The snake_case name (also the Cedar enum value).
    pub fn as_str(self) -> &'static str {
        match self {
            LoginMethod::PscCard => "psc_card",
            LoginMethod::PscApp => "psc_app",
            LoginMethod::HmSso => "hm_sso",
        }
    }

    /// PSC's `authMode` claim: `CARD` for the card; anything else (`MOBILE`,
    /// `APP`…) is the e-CPS app.
    pub fn from_psc_auth_mode(mode: Option<&str>) -> LoginMethod {
        match mode {
            Some(m) if m.eq_ignore_ascii_case("CARD") || m.eq_ignore_ascii_case("CPS") => {
                LoginMethod::PscCard
            }
            _ => LoginMethod::PscApp,
        }
    }
}

/// A validated national identifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NationalId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NationalIdError {
    #[error("the national identifier is missing")]
    Missing,
    #[error("the national identifier is malformed")]
    Malformed,
    #[error("the RPPS check digit is wrong")]
    BadCheckDigit,
}

impl NationalId {
    pub fn parse(raw: &str) -> Result<NationalId, NationalIdError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(NationalIdError::Missing);
        }
        if raw.len() < 2
            || raw.len() > 32
            || !raw.bytes().all(|b| b.is_ascii_alphanumeric())
            || !raw.as_bytes()[0].is_ascii_digit()
        {
            return Err(NationalIdError::Malformed);
        }
        match raw.as_bytes()[0] {
            b'8' => {
                let rpps = &raw[1..];
                if rpps.len() != 11 || !rpps.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(NationalIdError::Malformed);
                }
                if !luhn_valid(rpps) {
                    return Err(NationalIdError::BadCheckDigit);
                }
            }
            // ADELI: 9 characters (digits, with 2A/2B for Corsica).
            b'0' if raw.len() != 10 => return Err(NationalIdError::Malformed),
            _ => {}
        }
        Ok(NationalId(raw.to_owned()))
    }

    /// A national identifier that is an RPPS one (`8` + 11 digits, Luhn) or
    /// an ADELI one (`0` + 9 characters: digits, `2A`/`2B` for Corsica as
    /// the department). For sources whose field may hold something else
    /// (Hopital Manager's `sub`, often an internal user id): another prefix
    /// or shape is `Malformed`, never taken as a national identifier.
    pub fn parse_rpps_or_adeli(raw: &str) -> Result<NationalId, NationalIdError> {
        let id = NationalId::parse(raw)?;
        let ok = match id.0.as_bytes()[0] {
            b'8' => true, // parse checked 11 digits and the Luhn digit
            b'0' => {
                let adeli = &id.0.as_bytes()[1..];
                let dept_ok = adeli[..2].iter().all(u8::is_ascii_digit)
                    || matches!(&adeli[..2], b"2A" | b"2B");
                adeli.len() == 9 && dept_ok && adeli[2..].iter().all(u8::is_ascii_digit)
            }
            _ => false,
        };
        if ok {
            Ok(id)
        } else {
            Err(NationalIdError::Malformed)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 11-digit RPPS number when the identifier is an RPPS one.
    pub fn rpps(&self) -> Option<&str> {
        self.0.strip_prefix('8')
    }
}

/// Luhn check over a string of ASCII digits (the last digit is the check
/// digit): false for an empty string or one with a non-digit.
pub fn luhn_valid(digits: &str) -> bool {
    match digits.as_bytes().split_last() {
        Some((&last, payload)) if last.is_ascii_digit() => {
            // `payload` is a prefix of a str ending before an ASCII byte.
            luhn_check_digit(&digits[..payload.len()]) == Some(last - b'0')
        }
        _ => false,
    }
}

/// The Luhn check digit to append to a string of ASCII digits (the RPPS
/// key); `None` if it holds a non-digit.
pub fn luhn_check_digit(payload: &str) -> Option<u8> {
    let mut sum = 0u32;
    for (i, b) in payload.bytes().rev().enumerate() {
        let d = (b as char).to_digit(10)?;
        // Doubled: every other digit from the right of the payload, i.e.
        // the ones at odd positions once the check digit is appended.
        sum += if i % 2 == 0 {
            let x = d * 2;
            if x > 9 {
                x - 9
            } else {
                x
            }
        } else {
            d
        };
    }
    Some(((10 - sum % 10) % 10) as u8)
}

/// The signed-in professional, as kept in the session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Professional {
    pub national_id: NationalId,
    pub rpps: Option<String>,
    pub given_name: String,
    pub family_name: String,
    /// Profession codes (`10` = médecin).
    pub professions: Vec<String>,
    /// Savoir-faire codes (`SM26`…).
    pub savoir_faire: Vec<String>,
    pub login_method: LoginMethod,
}

impl Professional {
    pub fn new(
        national_id: NationalId,
        given_name: String,
        family_name: String,
        login_method: LoginMethod,
    ) -> Professional {
        Professional {
            rpps: national_id.rpps().map(str::to_owned),
            national_id,
            given_name,
            family_name,
            professions: Vec::new(),
            savoir_faire: Vec::new(),
            login_method,
        }
    }

    /// Reads PSC userinfo claims. Unknown or missing optional claims are
    /// tolerated; a missing or malformed `SubjectNameID` is an error.
    pub fn from_psc_claims(claims: &Value) -> Result<Professional, NationalIdError> {
        let raw = claims
            .get("SubjectNameID")
            .and_then(Value::as_str)
            .ok_or(NationalIdError::Missing)?;
        let national_id = NationalId::parse(raw)?;
        let exercices = claims
            .get("SubjectRefPro")
            .and_then(|r| r.get("exercices"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let text = |v: &Value, k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty())
                .map(|s| s.trim().to_owned())
        };
        let first_ex = exercices.first().cloned().unwrap_or(Value::Null);
        let given_name = text(claims, "given_name")
            .or_else(|| text(&first_ex, "prenomDexercice"))
            .unwrap_or_default();
        let family_name = text(claims, "family_name")
            .or_else(|| text(&first_ex, "nomDexercice"))
            .unwrap_or_default();
        let mut professions: Vec<String> = exercices
            .iter()
            .filter_map(|e| text(e, "codeProfession"))
            .collect();
        if professions.is_empty() {
            // SubjectRole: ["10^1.2.250.1.213.1.1.5.5"]: profession code ^ OID.
            professions = claims
                .get("SubjectRole")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .filter_map(|r| r.split('^').next())
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect();
        }
        let savoir_faire = exercices
            .iter()
            .filter_map(|e| text(e, "codeSavoirFaire"))
            .collect();
        professions.dedup();
        let login_method =
            LoginMethod::from_psc_auth_mode(claims.get("authMode").and_then(Value::as_str));
        let mut p = Professional::new(national_id, given_name, family_name, login_method);
        p.professions = professions;
        p.savoir_faire = savoir_faire;
        Ok(p)
    }

    pub fn display_name(&self) -> String {
        let name = format!("{} {}", self.given_name, self.family_name.to_uppercase());
        let name = name.trim();
        if name.is_empty() {
            "Professionnel de santé".to_owned()
        } else {
            name.to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// 8 + RPPS 99700000012? Compute the check digit the way the tests of the
    /// peers do: the 11th digit makes the Luhn sum a multiple of ten.
    fn rpps_with_check(prefix10: &str) -> String {
        (0..10)
            .map(|d| format!("{prefix10}{d}"))
            .find(|c| luhn_valid(c))
            .unwrap()
    }

    #[test]
    fn luhn_known_values() {
        assert!(luhn_valid("79927398713"));
        assert!(!luhn_valid("79927398710"));
        assert!(!luhn_valid(""));
        assert!(!luhn_valid("12a"));
        assert!(!luhn_valid("a0"));
        assert_eq!(luhn_check_digit("7992739871"), Some(3));
        assert_eq!(luhn_check_digit("9970012345"), Some(0));
        assert_eq!(luhn_check_digit(""), Some(0));
        assert_eq!(luhn_check_digit("9a"), None);
    }

    #[test]
    fn rpps_national_id() {
        let rpps = rpps_with_check("9970000001");
        let id = NationalId::parse(&format!("8{rpps}")).unwrap();
        assert_eq!(id.rpps(), Some(rpps.as_str()));
        let mut wrong = rpps.clone().into_bytes();
        wrong[10] = if wrong[10] == b'9' {
            b'0'
        } else {
            wrong[10] + 1
        };
        let wrong = String::from_utf8(wrong).unwrap();
        assert_eq!(
            NationalId::parse(&format!("8{wrong}")),
            Err(NationalIdError::BadCheckDigit)
        );
    }

    #[test]
    fn adeli_and_other_prefixes_have_no_rpps() {
        let id = NationalId::parse("0123456789").unwrap();
        assert_eq!(id.rpps(), None);
        assert_eq!(
            NationalId::parse("012345678"),
            Err(NationalIdError::Malformed)
        );
        assert!(NationalId::parse("3123456789").unwrap().rpps().is_none());
    }

    #[test]
    fn rpps_or_adeli_only() {
        let rpps = format!("8{}", rpps_with_check("9970000001"));
        for ok in [rpps.as_str(), "0123456789", "02A1234567", "02B0000001"] {
            assert_eq!(
                NationalId::parse_rpps_or_adeli(ok).unwrap().as_str(),
                ok,
                "{ok}"
            );
        }
        for bad in [
            "42",
            "12345",
            "3123456789",
            "1user",
            "0ABCDEFGHI",
            "012345678A",
            "02C1234567",
            "8ABC",
            "user@hm",
        ] {
            assert_eq!(
                NationalId::parse_rpps_or_adeli(bad),
                Err(NationalIdError::Malformed),
                "{bad}"
            );
        }
        let mut wrong = rpps.into_bytes();
        wrong[11] = if wrong[11] == b'9' {
            b'0'
        } else {
            wrong[11] + 1
        };
        assert_eq!(
            NationalId::parse_rpps_or_adeli(&String::from_utf8(wrong).unwrap()),
            Err(NationalIdError::BadCheckDigit)
        );
    }

    #[test]
    fn malformed_ids() {
        for bad in [
            "8ABC",
            "8123",
            "x123456789",
            "8 1234567890",
            "8123456789<1",
            "0",
        ] {
            assert_eq!(
                NationalId::parse(bad),
                Err(NationalIdError::Malformed),
                "{bad}"
            );
        }
        assert_eq!(NationalId::parse("  "), Err(NationalIdError::Missing));
    }

    #[test]
    fn psc_claims_with_unknown_claims_and_both_casings() {
        let rpps = rpps_with_check("9970000002");
        let claims = json!({
            "SubjectNameID": format!("8{rpps}"),
            "given_name": "Élise",
            "family_name": "Martin-Dupré",
            "SubjectRole": ["10^1.2.250.1.213.1.1.5.5"],
            "authMode": "CARD",
            "otherIDs": [{"identifiant": rpps, "origine": "RPPS", "qualite": 1}],
            "SomethingNew": {"x": 1},
            "SubjectRefPro": {"codeCivilite": "DR", "exercices": [
                {"codeProfession": "10", "codeSavoirFaire": "SM54", "nomDexercice": "X", "activities": []}
            ]}
        });
        let p = Professional::from_psc_claims(&claims).unwrap();
        assert_eq!(p.rpps.as_deref(), Some(rpps.as_str()));
        assert_eq!(p.professions, vec!["10"]);
        assert_eq!(p.savoir_faire, vec!["SM54"]);
        assert_eq!(p.login_method, LoginMethod::PscCard);
        assert_eq!(p.display_name(), "Élise MARTIN-DUPRÉ");
    }

    #[test]
    fn psc_claims_without_national_id_fail() {
        assert_eq!(
            Professional::from_psc_claims(&json!({"given_name": "A"})),
            Err(NationalIdError::Missing)
        );
        assert_eq!(
            Professional::from_psc_claims(&json!({"SubjectNameID": "8ABC"})),
            Err(NationalIdError::Malformed)
        );
    }

    #[test]
    fn app_login_and_role_fallback() {
        let claims = json!({"SubjectNameID": "0123456789", "authMode": "MOBILE",
                            "SubjectRole": ["40^1.2.250.1.213.1.1.5.5"]});
        let p = Professional::from_psc_claims(&claims).unwrap();
        assert_eq!(p.login_method, LoginMethod::PscApp);
        assert_eq!(p.professions, vec!["40"]);
        assert_eq!(p.rpps, None);
    }
}
