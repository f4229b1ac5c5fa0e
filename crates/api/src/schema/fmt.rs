//! Value formatting as the API server's Go code prints it (`%q` for strings, `%v` for numbers),
//! so messages match kube-apiserver's byte for byte.

use crate::yaml::Value;

use super::kubelib::go_quote;

/// Go's `%q`.
pub fn quote(s: &str) -> String {
    go_quote(s)
}

/// A bad value as `field.Error` prints it: strings quoted, numbers and booleans bare.
pub fn go_value(v: &Value) -> String {
    match v {
        Value::Null => "\"null\"".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => go_float(*f),
        Value::Str(s) => quote(s),
        Value::Seq(_) => "\"array\"".into(),
        Value::Map(_) => "\"object\"".into(),
    }
}

/// An enum's allowed value in a "supported values" list: strings as is, others as JSON, all
/// quoted.
pub fn enum_value(v: &Value) -> String {
    match v {
        Value::Str(s) => quote(s),
        Value::Null => quote("null"),
        Value::Bool(b) => quote(&b.to_string()),
        Value::Int(i) => quote(&i.to_string()),
        Value::Float(f) => quote(&go_float(*f)),
        Value::Seq(_) | Value::Map(_) => quote(v.type_name()),
    }
}

/// A `minimum`/`maximum` bound: as an integer when both it and the value are integral
/// (kube-openapi compares natively then), else as Go prints a float64.
pub fn number_bound(bound: f64, value_is_int: bool) -> String {
    if value_is_int && bound.fract() == 0.0 && bound.abs() < 9.2e18 {
        (bound as i64).to_string()
    } else {
        go_float(bound)
    }
}

/// Go's `%v` for a float64: shortest representation, exponent form when the decimal exponent
/// is below -4 or at least 6 (`4.294967295e+09`, `1e+06`, `0.5`, `150`).
pub fn go_float(f: f64) -> String {
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    if !f.is_finite() {
        return if f.is_nan() {
            "NaN".into()
        } else if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        format!("{f}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_go() {
        assert_eq!(go_float(4294967295.0), "4.294967295e+09");
        assert_eq!(go_float(1e6), "1e+06");
        assert_eq!(go_float(150.0), "150");
        assert_eq!(go_float(-0.1), "-0.1");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_float(65535.0), "65535");
        assert_eq!(number_bound(0.0, true), "0");
        assert_eq!(number_bound(100.0, false), "100");
    }

    #[test]
    fn values_print_like_go() {
        assert_eq!(go_value(&Value::Str("BLAH".into())), "\"BLAH\"");
        assert_eq!(go_value(&Value::Int(-3)), "-3");
        assert_eq!(go_value(&Value::Float(-0.1)), "-0.1");
        assert_eq!(enum_value(&Value::Int(3)), "\"3\"");
    }
}
