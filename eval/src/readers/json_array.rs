//! Splits a JSON array into its top-level elements with the line each starts on, so a record
//! that parses as JSON but is not a valid item can be reported by line (serde_json's values
//! carry no positions).

pub(crate) struct Element<'a> {
    pub text: &'a str,
    /// 1-based line of the element's first character.
    pub line: usize,
}

/// Scans `text` (a JSON array) and returns each top-level element's source slice. Only the
/// structure is checked here (brackets, strings); each slice is parsed by serde_json afterwards.
pub(crate) fn top_level_elements(text: &str) -> Result<Vec<Element<'_>>, String> {
    let bytes = text.as_bytes();
    let mut line = 1;
    let mut i = 0;
    while i < bytes.len() && bytes[i].is_ascii_whitespace() {
        line += usize::from(bytes[i] == b'\n');
        i += 1;
    }
    if bytes.get(i) != Some(&b'[') {
        return Err(format!("line {line}: expected a JSON array"));
    }
    i += 1;
    let mut elements = Vec::new();
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut start: Option<(usize, usize)> = None;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\n' {
            line += 1;
        }
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            i += 1;
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                start.get_or_insert((i, line));
            }
            b'[' | b'{' => {
                depth += 1;
                start.get_or_insert((i, line));
            }
            b']' | b'}' if depth > 0 => depth -= 1,
            b']' => {
                // The closing bracket of the top-level array.
                if let Some((s, l)) = start.take() {
                    elements.push(Element {
                        text: text[s..i].trim_end(),
                        line: l,
                    });
                }
                let rest = text[i + 1..].trim();
                if !rest.is_empty() {
                    return Err(format!("line {line}: trailing data after the array"));
                }
                return Ok(elements);
            }
            b',' if depth == 0 => {
                let (s, l) = start
                    .take()
                    .ok_or_else(|| format!("line {line}: empty array element"))?;
                elements.push(Element {
                    text: text[s..i].trim_end(),
                    line: l,
                });
            }
            _ if !b.is_ascii_whitespace() => {
                start.get_or_insert((i, line));
            }
            _ => {}
        }
        i += 1;
    }
    Err(format!("line {line}: unterminated JSON array"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_elements_with_lines() {
        let text = "[\n [1, \"a,]\"],\n {\"k\": [2]},\n 3\n]\n";
        let elements = top_level_elements(text).unwrap();
        let got: Vec<_> = elements.iter().map(|e| (e.text, e.line)).collect();
        assert_eq!(
            got,
            vec![("[1, \"a,]\"]", 2), ("{\"k\": [2]}", 3), ("3", 4)]
        );
    }

    #[test]
    fn rejects_unterminated() {
        assert!(top_level_elements("[1, [2").is_err());
        assert!(top_level_elements("{}").is_err());
        assert!(top_level_elements("[]").unwrap().is_empty());
    }
}
