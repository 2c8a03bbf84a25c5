//! The console's metrics (`GET /api/metrics`): the one Analytics Engine SQL query behind the
//! Overview (requests per minute, error rate, p50/p99 latency over a window) and the reading
//! of its answer. The data points are the api's (`crates/api/src/metrics.rs`): double1 is the
//! status, double2 the duration in ms; every sum is weighted by `_sample_interval`.

use serde::Serialize;
use serde_json::Value;

pub const DEFAULT_WINDOW_MINUTES: u32 = 60;
pub const MAX_WINDOW_MINUTES: u32 = 24 * 60;

/// The dataset name is a table name in the SQL: only a plain identifier is ever put there.
pub fn is_dataset_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Per minute over the last `minutes`: requests, 5xx errors, p50 and p99 duration.
pub fn overview_sql(dataset: &str, minutes: u32) -> String {
    format!(
        "SELECT toStartOfInterval(timestamp, INTERVAL '1' MINUTE) AS minute, \
         SUM(_sample_interval) AS requests, \
         SUM(IF(double1 >= 500, _sample_interval, 0)) AS errors, \
         quantileWeighted(0.5)(double2, _sample_interval) AS p50, \
         quantileWeighted(0.99)(double2, _sample_interval) AS p99 \
         FROM {dataset} WHERE timestamp > NOW() - INTERVAL '{minutes}' MINUTE \
         GROUP BY minute ORDER BY minute FORMAT JSON"
    )
}

/// `?window=` in minutes (1..=1440, default 60).
pub fn parse_window(query: Option<&str>) -> Result<u32, String> {
    let raw = query
        .unwrap_or("")
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == "window")
        .map(|(_, v)| v);
    match raw {
        None | Some("") => Ok(DEFAULT_WINDOW_MINUTES),
        Some(v) => v
            .parse()
            .ok()
            .filter(|m| (1..=MAX_WINDOW_MINUTES).contains(m))
            .ok_or_else(|| format!("window must be 1..{MAX_WINDOW_MINUTES} minutes")),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MinuteStat {
    pub minute: String,
    pub requests: f64,
    pub errors: f64,
    pub error_rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Reads the SQL API's `FORMAT JSON` answer (`{"data": [{...}], ...}`). ClickHouse writes
/// 64-bit integers as strings, so numbers are taken either way; a NaN quantile (no values)
/// reads as 0.
pub fn parse_answer(body: &[u8]) -> Result<Vec<MinuteStat>, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let rows = value
        .get("data")
        .and_then(Value::as_array)
        .ok_or("no data array")?;
    let number = |row: &Value, key: &str| -> f64 {
        match row.get(key) {
            Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
            Some(Value::String(s)) => s
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .unwrap_or(0.0),
            _ => 0.0,
        }
    };
    rows.iter()
        .map(|row| {
            let minute = row
                .get("minute")
                .and_then(Value::as_str)
                .ok_or("a row without its minute")?;
            let requests = number(row, "requests");
            let errors = number(row, "errors");
            Ok(MinuteStat {
                minute: minute.to_string(),
                requests,
                errors,
                error_rate: if requests > 0.0 {
                    errors / requests
                } else {
                    0.0
                },
                p50_ms: number(row, "p50"),
                p99_ms: number(row, "p99"),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_names_only_a_safe_table() {
        assert!(is_dataset_name("api_requests"));
        for bad in ["", "a;DROP", "a b", "x'--"] {
            assert!(!is_dataset_name(bad), "{bad}");
        }
        let sql = overview_sql("api_requests", 60);
        assert!(sql.contains("FROM api_requests WHERE timestamp > NOW() - INTERVAL '60' MINUTE"));
        assert!(sql.contains("quantileWeighted(0.99)(double2, _sample_interval)"));
        assert!(sql.ends_with("FORMAT JSON"));
    }

    #[test]
    fn windows() {
        assert_eq!(parse_window(None), Ok(60));
        assert_eq!(parse_window(Some("window=15")), Ok(15));
        for bad in ["window=0", "window=1441", "window=x"] {
            assert!(parse_window(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn answers_with_strings_or_numbers() {
        let body = br#"{"meta":[],"data":[
            {"minute":"2026-12-01 10:00:00","requests":"40","errors":"2","p50":3.5,"p99":"120"},
            {"minute":"2026-12-01 10:01:00","requests":0,"errors":0,"p50":"nan","p99":null}],"rows":2}"#;
        let stats = parse_answer(body).unwrap();
        assert_eq!(stats.len(), 2);
        assert_eq!(stats[0].requests, 40.0);
        assert_eq!(stats[0].error_rate, 0.05);
        assert_eq!(stats[0].p99_ms, 120.0);
        assert_eq!(stats[1].error_rate, 0.0);
        assert_eq!(stats[1].p50_ms, 0.0);
        assert!(parse_answer(b"{}").is_err());
        assert!(parse_answer(br#"{"data":[{"requests":1}]}"#).is_err());
    }
}
