//! `JwtRequirement`: which providers' tokens a request needs, evaluated over a function
//! that verifies one provider's token (memoised per request by the caller).

use crate::cache::Verified;
use crate::config::RawRequirement;
use crate::outcome::Failure;
use sdk_ext::config::ConfigError;
use std::rc::Rc;

/// `(provider index, audiences override, verified token)` → whether the audience fits.
pub type AudienceCheck<'a> = &'a dyn Fn(usize, Option<&[String]>, &Verified) -> bool;

/// A compiled requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// A valid token from provider `index`; `audiences` replaces the provider's list.
    Provider {
        /// Index into `Config::providers`.
        index: usize,
        /// `provider_and_audiences.audiences`, if given.
        audiences: Option<Vec<String>>,
    },
    /// Any one of these.
    Any(Vec<Requirement>),
    /// All of these.
    All(Vec<Requirement>),
    /// No token is fine; a token that is present must verify.
    AllowMissing,
    /// Anything goes; valid tokens still take effect.
    AllowMissingOrFailed,
}

fn provider_index(name: &str, names: &[&str], field: &str) -> Result<usize, ConfigError> {
    names
        .iter()
        .position(|n| *n == name)
        .ok_or_else(|| ConfigError::new(field, format!("no provider named {name:?} in providers")))
}

impl Requirement {
    /// Validates a requirement: exactly one field set, every provider known.
    pub fn compile(raw: &RawRequirement, names: &[&str], field: &str) -> Result<Self, ConfigError> {
        let set = [
            raw.provider_name.is_some(),
            raw.provider_and_audiences.is_some(),
            raw.requires_any.is_some(),
            raw.requires_all.is_some(),
            raw.allow_missing.is_some(),
            raw.allow_missing_or_failed.is_some(),
        ]
        .iter()
        .filter(|s| **s)
        .count();
        if set != 1 {
            return Err(ConfigError::new(
                field,
                "set exactly one of provider_name, provider_and_audiences, requires_any, \
                 requires_all, allow_missing, allow_missing_or_failed",
            ));
        }
        let list = |reqs: &[RawRequirement], name: &str| -> Result<Vec<Requirement>, ConfigError> {
            if reqs.len() < 2 {
                return Err(ConfigError::new(
                    format!("{field}.{name}.requirements"),
                    "needs at least 2 requirements",
                ));
            }
            reqs.iter()
                .enumerate()
                .map(|(i, r)| {
                    Requirement::compile(r, names, &format!("{field}.{name}.requirements[{i}]"))
                })
                .collect()
        };
        Ok(if let Some(name) = &raw.provider_name {
            Requirement::Provider {
                index: provider_index(name, names, &format!("{field}.provider_name"))?,
                audiences: None,
            }
        } else if let Some(pa) = &raw.provider_and_audiences {
            Requirement::Provider {
                index: provider_index(
                    &pa.provider_name,
                    names,
                    &format!("{field}.provider_and_audiences.provider_name"),
                )?,
                audiences: Some(pa.audiences.clone()),
            }
        } else if let Some(any) = &raw.requires_any {
            Requirement::Any(list(&any.requirements, "requires_any")?)
        } else if let Some(all) = &raw.requires_all {
            Requirement::All(list(&all.requirements, "requires_all")?)
        } else if raw.allow_missing.is_some() {
            Requirement::AllowMissing
        } else {
            Requirement::AllowMissingOrFailed
        })
    }

    /// Evaluates the requirement. `verify(index)` verifies provider `index`'s token
    /// (everything but the audience); `audiences_ok(index, override, verified)` checks
    /// the audience; `providers` is how many providers exist.
    pub fn evaluate(
        &self,
        providers: usize,
        verify: &mut dyn FnMut(usize) -> Result<Rc<Verified>, Failure>,
        audiences_ok: AudienceCheck<'_>,
    ) -> Result<(), Failure> {
        match self {
            Requirement::Provider { index, audiences } => {
                let verified = verify(*index)?;
                if audiences_ok(*index, audiences.as_deref(), &verified) {
                    Ok(())
                } else {
                    Err(Failure::BadAudience)
                }
            }
            Requirement::Any(list) => {
                let mut errors = Vec::with_capacity(list.len());
                for r in list {
                    match r.evaluate(providers, verify, audiences_ok) {
                        Ok(()) => return Ok(()),
                        Err(e) => errors.push(e),
                    }
                }
                Err(most_telling(&errors))
            }
            Requirement::All(list) => list
                .iter()
                .try_for_each(|r| r.evaluate(providers, verify, audiences_ok)),
            Requirement::AllowMissingOrFailed => {
                for i in 0..providers {
                    let _ = verify(i);
                }
                Ok(())
            }
            Requirement::AllowMissing => {
                let mut any_ok = false;
                let mut errors = Vec::new();
                for i in 0..providers {
                    match verify(i) {
                        Ok(v) if audiences_ok(i, None, &v) => any_ok = true,
                        Ok(_) => errors.push(Failure::BadAudience),
                        Err(Failure::Missing) => {}
                        Err(e) => errors.push(e),
                    }
                }
                // A token one provider accepted may be "unknown issuer" to the others.
                if any_ok {
                    errors.retain(|e| *e != Failure::BadIssuer);
                }
                match errors.first() {
                    None => Ok(()),
                    Some(_) => Err(most_telling(&errors)),
                }
            }
        }
    }
}

/// Of several failures, the one to report: a token's own problem beats "not this
/// issuer", which beats "missing".
fn most_telling(errors: &[Failure]) -> Failure {
    errors
        .iter()
        .copied()
        .find(|e| !matches!(e, Failure::Missing | Failure::BadIssuer))
        .or_else(|| errors.iter().copied().find(|e| *e == Failure::BadIssuer))
        .unwrap_or(Failure::Missing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::Claims;

    fn req(json: &str) -> Result<Requirement, ConfigError> {
        let raw: RawRequirement = serde_json::from_str(json).unwrap();
        Requirement::compile(&raw, &["a", "b"], "rules[0].requires")
    }

    fn verified() -> Rc<Verified> {
        Rc::new(Verified {
            claims: Claims::default(),
            payload: Default::default(),
            payload_b64: String::new(),
        })
    }

    /// Evaluates with fixed per-provider results; audiences always pass.
    fn eval(r: &Requirement, results: [Result<(), Failure>; 2]) -> Result<(), Failure> {
        let mut verify = |i: usize| results[i].map(|()| verified());
        r.evaluate(2, &mut verify, &|_, _, _| true)
    }

    const OK: Result<(), Failure> = Ok(());
    const MISSING: Result<(), Failure> = Err(Failure::Missing);
    const BAD: Result<(), Failure> = Err(Failure::BadSignature);
    const ISSUER: Result<(), Failure> = Err(Failure::BadIssuer);

    #[test]
    fn compile_checks_shape_and_names() {
        assert_eq!(
            req(r#"{"provider_name":"b"}"#).unwrap(),
            Requirement::Provider {
                index: 1,
                audiences: None
            }
        );
        let e = req(r#"{"provider_name":"zz"}"#).unwrap_err();
        assert_eq!(e.field, "rules[0].requires.provider_name");
        let e = req(
            r#"{"requires_any":{"requirements":[{"provider_name":"a"},{"provider_name":"c"}]}}"#,
        )
        .unwrap_err();
        assert_eq!(
            e.field,
            "rules[0].requires.requires_any.requirements[1].provider_name"
        );
        let e = req(r#"{"provider_name":"a","allow_missing":{}}"#).unwrap_err();
        assert!(e.reason.contains("exactly one"));
        assert!(req("{}").is_err());
        let e = req(r#"{"requires_all":{"requirements":[{"provider_name":"a"}]}}"#).unwrap_err();
        assert_eq!(e.field, "rules[0].requires.requires_all.requirements");
    }

    #[test]
    fn provider_any_all_semantics() {
        let a = req(r#"{"provider_name":"a"}"#).unwrap();
        assert_eq!(eval(&a, [OK, MISSING]), Ok(()));
        assert_eq!(eval(&a, [MISSING, OK]), Err(Failure::Missing));
        let any = req(
            r#"{"requires_any":{"requirements":[{"provider_name":"a"},{"provider_name":"b"}]}}"#,
        )
        .unwrap();
        assert_eq!(eval(&any, [MISSING, OK]), Ok(()));
        assert_eq!(eval(&any, [ISSUER, BAD]), Err(Failure::BadSignature));
        assert_eq!(eval(&any, [MISSING, ISSUER]), Err(Failure::BadIssuer));
        assert_eq!(eval(&any, [MISSING, MISSING]), Err(Failure::Missing));
        let all = req(
            r#"{"requires_all":{"requirements":[{"provider_name":"a"},{"provider_name":"b"}]}}"#,
        )
        .unwrap();
        assert_eq!(eval(&all, [OK, OK]), Ok(()));
        assert_eq!(eval(&all, [OK, BAD]), Err(Failure::BadSignature));
    }

    #[test]
    fn allow_missing_variants() {
        let m = req(r#"{"allow_missing":{}}"#).unwrap();
        assert_eq!(eval(&m, [MISSING, MISSING]), Ok(()));
        assert_eq!(eval(&m, [OK, ISSUER]), Ok(()));
        assert_eq!(eval(&m, [BAD, MISSING]), Err(Failure::BadSignature));
        assert_eq!(eval(&m, [ISSUER, ISSUER]), Err(Failure::BadIssuer));
        let f = req(r#"{"allow_missing_or_failed":{}}"#).unwrap();
        assert_eq!(eval(&f, [BAD, BAD]), Ok(()));
        // requires_any with allow_missing: missing passes, a bad token fails.
        let any = req(
            r#"{"requires_any":{"requirements":[{"provider_name":"a"},{"allow_missing":{}}]}}"#,
        )
        .unwrap();
        assert_eq!(eval(&any, [MISSING, MISSING]), Ok(()));
        assert_eq!(eval(&any, [BAD, MISSING]), Err(Failure::BadSignature));
    }

    #[test]
    fn audience_override_is_passed_through() {
        let r =
            req(r#"{"provider_and_audiences":{"provider_name":"a","audiences":["x"]}}"#).unwrap();
        let mut verify = |_: usize| Ok(verified());
        let seen = std::cell::RefCell::new(None);
        let check = |i: usize, aud: Option<&[String]>, _: &Verified| {
            *seen.borrow_mut() = Some((i, aud.map(<[String]>::to_vec)));
            false
        };
        assert_eq!(
            r.evaluate(2, &mut verify, &check),
            Err(Failure::BadAudience)
        );
        assert_eq!(*seen.borrow(), Some((0, Some(vec!["x".to_string()]))));
    }
}
