//! Benchmark plugin: `submit` with prompt `K URL` GETs URL K times in sequence and reports
//! `requests` and `bytes` in the notes; any failure or non-2xx status fails the call.

use atelier_sdk::*;

#[derive(Default)]
struct BenchHttp;

impl Model for BenchHttp {
    fn describe(&self) -> ModelInfo {
        ModelInfo::image_edit("bench-http", "HTTP benchmark")
    }

    fn submit(&self, req: Request) -> Result<Submission, Error> {
        let (k, url) = req.prompt.trim().split_once(' ').ok_or(Error::invalid("prompt must be `K URL`"))?;
        let k: u32 = k.parse().map_err(|_| Error::invalid("K must be a number"))?;
        let request = http::Request::get(url.trim());
        let mut bytes = 0usize;
        for _ in 0..k {
            let resp = request.send()?;
            if !resp.is_success() {
                return Err(Error::Internal(format!("status {}", resp.status)));
            }
            bytes += resp.body.len();
        }
        let mut a = Artifact::inline("text/plain", b"bench".to_vec());
        a.notes = vec![("requests".into(), k.to_string()), ("bytes".into(), bytes.to_string())];
        Ok(Submission::Done(Outcome::new(vec![a])))
    }
}

register_model!(BenchHttp);
