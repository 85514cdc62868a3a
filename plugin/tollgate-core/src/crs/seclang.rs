//! SecLang text into directives: the configuration language of ModSecurity and the OWASP Core
//! Rule Set, read as ModSecurity's own parser reads it.
//!
//! A directive is a name and its arguments, on one logical line (a line ending in `\` continues
//! on the next). Arguments are bare words or double-quoted strings in which `\"` stands for a
//! quote and every other backslash is kept (regular expressions need them). An action list
//! (`id:1,phase:2,msg:'a, b'`) splits on commas outside single quotes. Every malformed line is
//! reported with its number; nothing here panics on any input.

/// One directive, with the line it starts on (1-based).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Directive {
    /// The line the directive starts on.
    pub line: u32,
    /// `SecRule`, `SecAction`, `SecMarker`, ...
    pub name: String,
    /// Its arguments, unquoted.
    pub args: Vec<String>,
}

/// A problem at a line of a rules file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError {
    /// The line (1-based).
    pub line: u32,
    /// What is wrong.
    pub message: String,
}

/// Splits a rules file into directives, and reports every line that cannot be read.
pub fn directives(text: &str) -> (Vec<Directive>, Vec<LineError>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut logical = String::new();
    let mut start = 0u32;
    for (n, raw) in text.lines().enumerate() {
        let number = u32::try_from(n + 1).unwrap_or(u32::MAX);
        if logical.is_empty() {
            start = number;
            let t = raw.trim_start();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
        }
        match raw.strip_suffix('\\') {
            Some(part) => {
                logical.push_str(part);
            }
            None => {
                logical.push_str(raw);
                finish(&logical, start, &mut out, &mut errors);
                logical.clear();
            }
        }
    }
    if !logical.is_empty() {
        finish(&logical, start, &mut out, &mut errors);
    }
    (out, errors)
}

fn finish(logical: &str, line: u32, out: &mut Vec<Directive>, errors: &mut Vec<LineError>) {
    match words(logical) {
        Ok(mut w) if !w.is_empty() => {
            let name = w.remove(0);
            out.push(Directive {
                line,
                name,
                args: w,
            });
        }
        Ok(_) => {}
        Err(message) => errors.push(LineError { line, message }),
    }
}

/// The words of one logical line: bare or double-quoted.
fn words(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else {
            return Ok(out);
        };
        let mut word = String::new();
        if first == '"' {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' if chars.peek() == Some(&'"') => {
                        chars.next();
                        word.push('"');
                    }
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => word.push(c),
                }
            }
            if !closed {
                return Err(format!("unterminated quoted argument {}", preview(&word)));
            }
            if chars.peek().is_some_and(|c| !c.is_whitespace()) {
                return Err(format!(
                    "text right after the closing quote of {}",
                    preview(&word)
                ));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                word.push(c);
                chars.next();
            }
        }
        out.push(word);
    }
}

/// The start of a long argument, for an error message.
fn preview(s: &str) -> String {
    let short: String = s.chars().take(40).collect();
    if short.len() < s.len() {
        format!("\"{short}...\"")
    } else {
        format!("\"{short}\"")
    }
}

/// One action of an action list: `name` or `name:value` (quotes removed from the value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Action {
    /// Lower-case action name.
    pub name: String,
    /// Its argument, if any.
    pub value: Option<String>,
}

/// Splits an action list on commas outside single quotes.
pub fn actions(list: &str) -> Result<Vec<Action>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = list.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted && chars.peek() == Some(&'\'') => {
                chars.next();
                cur.push('\'');
            }
            '\'' => quoted = !quoted,
            ',' if !quoted => {
                push_action(&cur, &mut out)?;
                cur.clear();
            }
            c => cur.push(c),
        }
    }
    if quoted {
        return Err(format!("unterminated quote in actions {}", preview(list)));
    }
    push_action(&cur, &mut out)?;
    Ok(out)
}

fn push_action(raw: &str, out: &mut Vec<Action>) -> Result<(), String> {
    let t = raw.trim();
    if t.is_empty() {
        return Ok(());
    }
    let (name, value) = match t.split_once(':') {
        Some((n, v)) => (n.trim(), Some(v.trim().to_string())),
        None => (t, None),
    };
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("malformed action {}", preview(t)));
    }
    out.push(Action {
        name: name.to_ascii_lowercase(),
        value,
    });
    Ok(())
}

/// One variable of a rule's target list (`!REQUEST_COOKIES:/__utm/`, `&ARGS`, `XML:/*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VarSpec {
    /// `!`: remove these from the rule's targets.
    pub exclude: bool,
    /// `&`: the number of values, not the values.
    pub count: bool,
    /// Upper-case collection name.
    pub collection: String,
    /// The part after `:`: a name, or a `/regex/`.
    pub selector: Option<Selector>,
}

/// Which members of a collection a variable names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// One member by name (compared case-insensitively).
    Name(String),
    /// Members whose names match a regular expression.
    Regex(String),
}

/// Splits a target list on `|`, respecting `/regex/` and `'quoted'` selectors.
pub fn variables(list: &str) -> Result<Vec<VarSpec>, String> {
    let mut out = Vec::new();
    let mut rest = list.trim();
    while !rest.is_empty() {
        let mut exclude = false;
        let mut count = false;
        loop {
            if let Some(r) = rest.strip_prefix('!') {
                exclude = true;
                rest = r;
            } else if let Some(r) = rest.strip_prefix('&') {
                count = true;
                rest = r;
            } else {
                break;
            }
        }
        let name_len = rest.find([':', '|']).unwrap_or(rest.len());
        let collection = rest
            .get(..name_len)
            .unwrap_or("")
            .trim()
            .to_ascii_uppercase();
        if collection.is_empty()
            || !collection
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(format!("malformed variable in {}", preview(list)));
        }
        rest = rest.get(name_len..).unwrap_or("");
        let mut selector = None;
        if let Some(after) = rest.strip_prefix(':') {
            if collection == "XML" {
                // An XPath expression (`XML:/*`), not a regex.
                let end = after.find('|').unwrap_or(after.len());
                selector = Some(Selector::Name(
                    after.get(..end).unwrap_or("").trim().to_string(),
                ));
                rest = after.get(end..).unwrap_or("");
            } else if let Some(body) = after.strip_prefix('/') {
                // A regex selector ends at the first unescaped `/`.
                let mut end = None;
                let mut escaped = false;
                for (i, c) in body.char_indices() {
                    match c {
                        '\\' if !escaped => escaped = true,
                        '/' if !escaped => {
                            end = Some(i);
                            break;
                        }
                        _ => escaped = false,
                    }
                }
                let end = end
                    .ok_or_else(|| format!("unterminated /regex/ selector in {}", preview(list)))?;
                selector = Some(Selector::Regex(body.get(..end).unwrap_or("").to_string()));
                rest = body.get(end + 1..).unwrap_or("");
            } else if let Some(body) = after.strip_prefix('\'') {
                let end = body
                    .find('\'')
                    .ok_or_else(|| format!("unterminated quoted selector in {}", preview(list)))?;
                selector = Some(Selector::Name(body.get(..end).unwrap_or("").to_string()));
                rest = body.get(end + 1..).unwrap_or("");
            } else {
                let end = after.find('|').unwrap_or(after.len());
                let name = after.get(..end).unwrap_or("").trim();
                if name.is_empty() {
                    return Err(format!("empty selector after : in {}", preview(list)));
                }
                selector = Some(Selector::Name(name.to_string()));
                rest = after.get(end..).unwrap_or("");
            }
        }
        out.push(VarSpec {
            exclude,
            count,
            collection,
            selector,
        });
        rest = rest.trim_start();
        match rest.strip_prefix('|') {
            Some(r) => rest = r.trim_start(),
            None if rest.is_empty() => {}
            None => return Err(format!("expected | between variables in {}", preview(list))),
        }
    }
    if out.is_empty() {
        return Err("no variables".into());
    }
    Ok(out)
}

/// A rule's operator: `@name argument`, possibly negated with `!`; a bare pattern is `@rx`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorSpec {
    /// `!@...`
    pub negated: bool,
    /// Lower-case operator name without `@`.
    pub name: String,
    /// The argument (may be empty).
    pub arg: String,
}

/// Reads an operator string.
pub fn operator(s: &str) -> OperatorSpec {
    let (negated, rest) = match s.strip_prefix('!') {
        Some(r) => (true, r),
        None => (false, s),
    };
    match rest.strip_prefix('@') {
        Some(r) => {
            let (name, arg) = match r.split_once(|c: char| c.is_whitespace()) {
                Some((n, a)) => (n, a.trim_start()),
                None => (r, ""),
            };
            OperatorSpec {
                negated,
                name: name.to_ascii_lowercase(),
                arg: arg.to_string(),
            }
        }
        None => OperatorSpec {
            negated,
            name: "rx".into(),
            arg: rest.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continued_lines_and_quotes() {
        let text = "# comment\nSecRule ARGS \"@rx a\\\"b\\d\" \\\n    \"id:1,\\\n    phase:2\"\nSecMarker END\n";
        let (d, e) = directives(text);
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].line, 2);
        assert_eq!(d[0].args, vec!["ARGS", "@rx a\"b\\d", "id:1,    phase:2"]);
        assert_eq!(d[1].name, "SecMarker");
        assert_eq!(d[1].line, 5);
    }

    #[test]
    fn unterminated_quote_is_an_error_with_its_line() {
        let (_, e) = directives("SecMarker A\nSecRule ARGS \"@rx a\n");
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].line, 2);
        assert!(e[0].message.contains("unterminated"), "{}", e[0].message);
    }

    #[test]
    fn action_lists_split_outside_quotes() {
        let a = actions("id:1, msg:'a, b',setvar:'tx.x=+%{tx.y}',chain").unwrap();
        assert_eq!(a.len(), 4);
        assert_eq!(a[1].value.as_deref(), Some("a, b"));
        assert_eq!(a[2].value.as_deref(), Some("tx.x=+%{tx.y}"));
        assert_eq!(a[3].name, "chain");
        assert!(actions("id:1,msg:'x").is_err());
    }

    #[test]
    fn variables_with_selectors() {
        let v = variables(
            "REQUEST_COOKIES|!REQUEST_COOKIES:/^(?:a|b)$/|&ARGS|XML:/*|REQUEST_HEADERS:User-Agent",
        )
        .unwrap();
        assert_eq!(v.len(), 5);
        assert!(v[1].exclude);
        assert_eq!(v[1].selector, Some(Selector::Regex("^(?:a|b)$".into())));
        assert!(v[2].count);
        assert_eq!(v[3].selector, Some(Selector::Name("/*".into())));
        assert_eq!(v[4].selector, Some(Selector::Name("User-Agent".into())));
        assert!(variables("ARGS|").is_ok());
        assert!(variables("ARGS:/x").is_err());
    }

    #[test]
    fn operators() {
        assert_eq!(
            operator("!@within %{tx.a}"),
            OperatorSpec {
                negated: true,
                name: "within".into(),
                arg: "%{tx.a}".into()
            }
        );
        assert_eq!(operator("^abc$").name, "rx");
        assert_eq!(operator("@detectSQLi").arg, "");
    }
}
