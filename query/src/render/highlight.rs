//! ACTIVATION OF … ON TEXT drawn as the text itself (Neuronpedia's "test your own text"): every
//! token the feature fired on is shaded by its value as a fraction of the feature's largest
//! activation in the store.

use super::text::tokens_as_text;
use crate::result::{ResultSet, Value};

/// Background colours (xterm 256), from faint to strong: a fifth of the maximum each.
const SHADES: [u8; 5] = [230, 223, 216, 209, 202];

/// The text of an ACTIVATION OF result with its active tokens marked: with `color`, a background
/// shade and black letters; without, `[token 0.42]` (the fraction of the maximum, or the value
/// itself when the store holds no maximum). Inactive tokens are left as they are.
pub fn activation_text(rs: &ResultSet, color: bool) -> String {
    let column = |name: &str| rs.columns.iter().position(|c| c == name);
    let (Some(tc), Some(vc), Some(fc)) =
        (column("token"), column("value"), column("fraction_of_max"))
    else {
        return String::new();
    };
    let tokens: Vec<String> = rs
        .rows
        .iter()
        .map(|r| r[tc].as_str().unwrap_or("").to_string())
        .collect();
    let number = |v: &Value| match v {
        Value::Float(f) => Some(*f),
        Value::Int(i) => Some(*i as f64),
        _ => None,
    };
    let mut text = tokens_as_text(&tokens, |i, piece| {
        let value = number(&rs.rows[i][vc]).unwrap_or(0.0);
        if value <= 0.0 {
            return piece.to_string();
        }
        let fraction = number(&rs.rows[i][fc]);
        if color {
            let share = fraction.unwrap_or(1.0).clamp(0.0, 1.0);
            let shade = SHADES[((share * SHADES.len() as f64) as usize).min(SHADES.len() - 1)];
            format!("\x1b[48;5;{shade}m\x1b[30m{piece}\x1b[0m")
        } else {
            format!("[{piece} {:.2}]", fraction.unwrap_or(value))
        }
    });
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::ResultKind;

    fn result(rows: &[(&str, f64, Option<f64>)]) -> ResultSet {
        let mut rs = ResultSet::new(
            ResultKind::TextActivation,
            &["pos", "token", "value", "fraction_of_max"],
        );
        for (i, (t, v, f)) in rows.iter().enumerate() {
            rs.rows.push(vec![
                Value::Int(i as i64),
                Value::str(*t),
                Value::Float(*v),
                f.map_or(Value::Null, Value::Float),
            ]);
        }
        rs
    }

    #[test]
    fn active_tokens_are_marked_in_the_text() {
        let rs = result(&[
            ("[CLS]", 0.0, Some(0.0)),
            ("golden", 3.0, Some(0.5)),
            ("##gate", 0.0, Some(0.0)),
        ]);
        assert_eq!(activation_text(&rs, false), "[CLS] [golden 0.50]gate\n");
        let rs = result(&[("The", 0.0, Some(0.0)), (" food", 6.0, Some(1.0))]);
        assert_eq!(activation_text(&rs, false), "The[ food 1.00]\n");
        assert!(activation_text(&rs, true).contains("\x1b[48;5;202m\x1b[30m food\x1b[0m"));
        // No stored maximum: the value itself.
        let rs = result(&[("The", 0.0, None), (" food", 6.0, None)]);
        assert_eq!(activation_text(&rs, false), "The[ food 6.00]\n");
    }
}
