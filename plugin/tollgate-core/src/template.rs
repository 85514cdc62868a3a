//! Path templates such as `/v1/vehicles/{vin}`: literal segments and single-segment parameters.
//! Matching walks the path once, segment by segment, without allocating.

/// A compiled path template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathTemplate {
    segments: Vec<Segment>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

impl PathTemplate {
    /// Parses a template. Errors name what is wrong in words for a policy author.
    pub fn parse(template: &str) -> Result<Self, String> {
        let Some(rest) = template.strip_prefix('/') else {
            return Err(format!("path template {template:?} must start with '/'"));
        };
        if template.contains(['?', '#']) {
            return Err(format!(
                "path template {template:?} must not contain a query or fragment"
            ));
        }
        let mut segments = Vec::new();
        if rest.is_empty() {
            return Ok(PathTemplate { segments });
        }
        for seg in rest.split('/') {
            if seg.is_empty() {
                return Err(format!("path template {template:?} has an empty segment"));
            }
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                if !is_param_name(name) {
                    return Err(format!(
                        "parameter {{{name}}} in {template:?} must be a name of letters, digits and '_'"
                    ));
                }
                if segments
                    .iter()
                    .any(|s| matches!(s, Segment::Param(p) if p == name))
                {
                    return Err(format!(
                        "parameter {{{name}}} appears twice in {template:?}"
                    ));
                }
                segments.push(Segment::Param(name.to_string()));
            } else if seg.contains(['{', '}']) {
                return Err(format!(
                    "segment {seg:?} in {template:?} mixes text and a parameter; a parameter takes a whole segment"
                ));
            } else if seg == "." || seg == ".." {
                return Err(format!("path template {template:?} has a dot segment"));
            } else {
                segments.push(Segment::Literal(seg.to_string()));
            }
        }
        Ok(PathTemplate { segments })
    }

    /// Whether `path` (without query string) matches. A parameter matches one non-empty segment
    /// that is not a dot segment: `.`, `..`, their percent-encoded forms, or either followed by
    /// `;` parameters (which some servers strip, turning `..;` into `..`). Envoy normalises paths
    /// before the filter runs; this holds where a proxy in front does not.
    pub fn matches(&self, path: &str) -> bool {
        let Some(rest) = path.strip_prefix('/') else {
            return false;
        };
        if rest.is_empty() {
            return self.segments.is_empty();
        }
        let mut parts = rest.split('/');
        for seg in &self.segments {
            let Some(part) = parts.next() else {
                return false;
            };
            let ok = match seg {
                Segment::Literal(lit) => lit == part,
                Segment::Param(_) => !part.is_empty() && !is_dot_segment(part),
            };
            if !ok {
                return false;
            }
        }
        parts.next().is_none()
    }
}

impl PathTemplate {
    /// The names of the parameters, in order.
    pub fn param_names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Param(p) => Some(p.as_str()),
            Segment::Literal(_) => None,
        })
    }

    /// The raw (still percent-encoded) value of each parameter, for a path that matches.
    pub fn captures<'p>(&self, path: &'p str) -> Vec<(&str, &'p str)> {
        let rest = path.strip_prefix('/').unwrap_or(path);
        self.segments
            .iter()
            .zip(rest.split('/'))
            .filter_map(|(seg, part)| match seg {
                Segment::Param(name) => Some((name.as_str(), part)),
                Segment::Literal(_) => None,
            })
            .collect()
    }
}

fn is_dot_segment(part: &str) -> bool {
    let bare = part.split(';').next().unwrap_or(part);
    let mut rest = bare;
    let mut dots = 0;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            rest = r;
        } else if rest.len() >= 3 && rest.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("%2e")) {
            rest = rest.get(3..).unwrap_or("");
        } else {
            return false;
        }
        dots += 1;
    }
    dots == 1 || dots == 2
}

fn is_param_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_parameters() {
        let t = PathTemplate::parse("/v1/vehicles/{vin}").unwrap();
        assert!(t.matches("/v1/vehicles/WVWZZZ1JZXW000001"));
        assert!(!t.matches("/v1/vehicles/"));
        assert!(!t.matches("/v1/vehicles"));
        assert!(!t.matches("/v1/vehicles/A/B"));
        assert!(!t.matches("/v1/vehicle/A"));
        assert!(!t.matches("v1/vehicles/A"));
    }

    #[test]
    fn parameters_never_match_dot_segments() {
        let t = PathTemplate::parse("/v1/vehicles/{vin}/recalls").unwrap();
        for bad in [".", "..", "..;", "..;x=1", "%2e%2E", ".%2e", "%2e"] {
            assert!(!t.matches(&format!("/v1/vehicles/{bad}/recalls")), "{bad}");
        }
        for good in ["...", "a..b", ".hidden", "WVW.1", "%2e%2e%2e"] {
            assert!(t.matches(&format!("/v1/vehicles/{good}/recalls")), "{good}");
        }
    }

    #[test]
    fn root_template_matches_only_root() {
        let t = PathTemplate::parse("/").unwrap();
        assert!(t.matches("/"));
        assert!(!t.matches("/x"));
        assert!(!t.matches(""));
    }

    #[test]
    fn trailing_slash_is_a_different_path() {
        let t = PathTemplate::parse("/v1/orders").unwrap();
        assert!(t.matches("/v1/orders"));
        assert!(!t.matches("/v1/orders/"));
    }

    #[test]
    fn bad_templates_are_refused() {
        for (bad, needle) in [
            ("v1/x", "must start with '/'"),
            ("/v1//x", "empty segment"),
            ("/v1/x/", "empty segment"),
            ("/v1/{a}/{a}", "appears twice"),
            ("/v1/{}", "must be a name"),
            ("/v1/{a-b}", "must be a name"),
            ("/v1/x{a}", "mixes text"),
            ("/v1/x?y=1", "query"),
            ("/v1/../x", "dot segment"),
        ] {
            let err = PathTemplate::parse(bad).unwrap_err();
            assert!(err.contains(needle), "{bad}: {err}");
        }
    }
}
