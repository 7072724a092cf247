//! The control routes' JSON bodies, decoded and checked without any I/O,
//! so that the fuzzer runs exactly what the server runs.

use nix::sys::signal::Signal;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::control::parse_signal;
use super::reply::ApiError;

/// `DELETE /api/ps`.
#[derive(Debug)]
pub struct SignalRequest {
    pub pid: i64,
    pub signal: Signal,
}

/// `PATCH /api/ps`.
#[derive(Debug)]
pub struct ReniceRequest {
    pub pid: i64,
    pub priority: i32,
}

/// `POST /api/ps`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    pub cmd: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignalBody {
    pid: i64,
    signal: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReniceBody {
    pid: i64,
    priority: i64,
}

pub fn signal_request(bytes: &[u8]) -> Result<SignalRequest, ApiError> {
    let body: SignalBody = decode(bytes)?;
    Ok(SignalRequest {
        pid: body.pid,
        signal: parse_signal(body.signal.as_ref())?,
    })
}

pub fn renice_request(bytes: &[u8]) -> Result<ReniceRequest, ApiError> {
    let body: ReniceBody = decode(bytes)?;
    let priority = i32::try_from(body.priority)
        .ok()
        .filter(|p| (-20..=19).contains(p))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "priority {} is out of range; give -20 (most favoured) to 19 (least)",
                body.priority
            ))
        })?;
    Ok(ReniceRequest {
        pid: body.pid,
        priority,
    })
}

pub fn run_request(bytes: &[u8]) -> Result<RunRequest, ApiError> {
    let body: RunRequest = decode(bytes)?;
    if body.cmd.is_empty() {
        return Err(ApiError::bad_request(
            "`cmd` is empty; give the argv, e.g. [\"/usr/bin/systemctl\", \"status\", \"nginx\"]",
        ));
    }
    Ok(body)
}

/// JSON of the expected shape, or a 400 that says what is wrong where.
fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_checked() {
        let ok = signal_request(br#"{"pid": 12, "signal": "hup"}"#).unwrap();
        assert_eq!((ok.pid, ok.signal), (12, Signal::SIGHUP));
        assert_eq!(
            renice_request(br#"{"pid": 1, "priority": -20}"#)
                .unwrap()
                .priority,
            -20
        );
        let e = renice_request(br#"{"pid": 1, "priority": 20}"#).unwrap_err();
        assert!(e.message.contains("out of range"), "{}", e.message);
        let e = signal_request(br#"{"pid": 1, "sginal": 9}"#).unwrap_err();
        assert!(
            e.message.contains("unknown field `sginal`"),
            "{}",
            e.message
        );
        let e = signal_request(br#"{"pid": 1"#).unwrap_err();
        assert!(e.message.contains("line 1 column 9"), "{}", e.message);
        assert_eq!(run_request(br#"{"cmd": []}"#).unwrap_err().status, 400);
        assert_eq!(
            run_request(br#"{"cmd": "/bin/true"}"#).unwrap_err().status,
            400
        );
    }
}
