//! A TCP proxy between the S3 client and the store that injects faults per connection (the
//! blocking client opens one connection per request, so a fault hits exactly one request):
//! 5xx answers, answers delayed past the client's timeout, requests cut mid-upload, and answers
//! cut after the store already applied the request.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Pass,
    /// Read the request, answer `503 SlowDown` without forwarding it.
    Status503,
    /// Forward the request, hold the answer for this long (past the client timeout).
    Delay(Duration),
    /// Forward only this percentage of the request's bytes, then cut both sides.
    CutRequest(usize),
    /// Forward the whole request, then cut the answer after a few bytes (the store applied it).
    CutResponse(usize),
}

/// Per-kind counts of injected faults.
#[derive(Debug, Default)]
pub struct FaultCounts {
    pub connections: AtomicU64,
    pub status_503: AtomicU64,
    pub delays: AtomicU64,
    pub cut_requests: AtomicU64,
    pub cut_responses: AtomicU64,
}

impl FaultCounts {
    pub fn injected(&self) -> u64 {
        self.status_503.load(Ordering::Relaxed)
            + self.delays.load(Ordering::Relaxed)
            + self.cut_requests.load(Ordering::Relaxed)
            + self.cut_responses.load(Ordering::Relaxed)
    }
}

struct Plan {
    rng: u64,
    fault_percent: u64,
    delay: Duration,
}

impl Plan {
    fn next(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn pick(&mut self) -> Fault {
        if self.next() % 100 >= self.fault_percent {
            return Fault::Pass;
        }
        match self.next() % 16 {
            0..=4 => Fault::Status503,
            5 => Fault::Delay(self.delay),
            6..=10 => Fault::CutRequest(5 + (self.next() % 90) as usize),
            _ => Fault::CutResponse((self.next() % 40) as usize),
        }
    }
}

/// The proxy; faults are drawn from a seeded generator, `fault_percent` of connections get one.
pub struct FaultProxy {
    pub addr: SocketAddr,
    plan: Arc<Mutex<Plan>>,
    pub counts: Arc<FaultCounts>,
    stop: Arc<AtomicBool>,
}

impl FaultProxy {
    pub fn start(upstream: SocketAddr, seed: u64, delay: Duration) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let plan = Arc::new(Mutex::new(Plan {
            rng: seed | 1,
            fault_percent: 0,
            delay,
        }));
        let counts = Arc::new(FaultCounts::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (p, c, s) = (Arc::clone(&plan), Arc::clone(&counts), Arc::clone(&stop));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = conn else { continue };
                let fault = p.lock().unwrap().pick();
                let c = Arc::clone(&c);
                std::thread::spawn(move || serve(client, upstream, fault, &c));
            }
        });
        FaultProxy {
            addr,
            plan,
            counts,
            stop,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_fault_percent(&self, percent: u64) {
        self.plan.lock().unwrap().fault_percent = percent;
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Reads one HTTP request (headers + Content-Length body) from `s`.
fn read_request(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = s.read(&mut tmp)?;
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&tmp[..n]);
            }
            return Ok(buf);
        }
        let n = s.read(&mut tmp)?;
        if n == 0 {
            return Ok(buf);
        }
        buf.extend_from_slice(&tmp[..n]);
    }
}

fn serve(mut client: TcpStream, upstream: SocketAddr, fault: Fault, counts: &FaultCounts) {
    counts.connections.fetch_add(1, Ordering::Relaxed);
    let _ = client.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(request) = read_request(&mut client) else {
        return;
    };
    if fault == Fault::Status503 {
        counts.status_503.fetch_add(1, Ordering::Relaxed);
        let body = "<?xml version=\"1.0\"?><Error><Code>SlowDown</Code><Message>injected</Message></Error>";
        let _ = write!(
            client,
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        return;
    }
    let Ok(mut server) = TcpStream::connect(upstream) else {
        return;
    };
    if let Fault::CutRequest(percent) = fault {
        let n = request.len() * percent / 100;
        if n < request.len() {
            counts.cut_requests.fetch_add(1, Ordering::Relaxed);
            let _ = server.write_all(&request[..n]);
            let _ = server.shutdown(Shutdown::Both);
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
    }
    if server.write_all(&request).is_err() {
        return;
    }
    // Relay the answer until the store closes or stops sending (the client closes its side).
    let _ = server.set_read_timeout(Some(Duration::from_secs(10)));
    let mut answer = Vec::new();
    let mut tmp = [0u8; 16384];
    let mut sent = 0usize;
    if let Fault::Delay(d) = fault {
        counts.delays.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(d);
    }
    loop {
        let n = match server.read(&mut tmp) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        answer.extend_from_slice(&tmp[..n]);
        if let Fault::CutResponse(limit) = fault {
            if answer.len() > limit {
                counts.cut_responses.fetch_add(1, Ordering::Relaxed);
                let _ = client.write_all(&answer[..limit]);
                let _ = client.shutdown(Shutdown::Both);
                return;
            }
            continue;
        }
        if client.write_all(&answer[sent..]).is_err() {
            return;
        }
        sent = answer.len();
        if response_complete(&answer) {
            break;
        }
    }
    let _ = client.shutdown(Shutdown::Both);
}

/// True once `a` holds a whole HTTP response with a Content-Length (or a bodiless status).
fn response_complete(a: &[u8]) -> bool {
    let Some(end) = a.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&a[..end]).to_ascii_lowercase();
    match head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        Some(len) => a.len() >= end + 4 + len,
        None => head.starts_with("http/1.1 204") || head.starts_with("http/1.1 304"),
    }
}
