//! SMPP load tools for the benchmark harness (`bench/run`).
//!
//! ```sh
//! smpp-bench smsc --listen 127.0.0.1:2776 --stats 127.0.0.1:2777
//! smpp-bench load --addr 127.0.0.1:2775 --system-id acme --password secret8 \
//!     --window 64 --seconds 10 --prefix 212 [--service-type OTP] [--body TEXT]
//! ```
//!
//! - `smsc`: a loopback SMSC for stopgate's SMPP upstream. It takes any
//!   bind, answers every `submit_sm` with `ESME_ROK` and a fresh message id,
//!   keeps nothing and logs nothing, so that what is measured is the thing
//!   in front of it. `GET /stats` on `--stats` answers
//!   `{"submits", "binds", "malformed"}`.
//! - `load`: an application bound as a transmitter that keeps `--window`
//!   `submit_sm` unanswered for `--seconds`, each to a new US number
//!   `+1 PPP 2XX XXXX` (`--prefix` is the area code), and prints one JSON
//!   line: requests, statuses, submit_sm/s, latency percentiles.
//!
//! PDUs are written and read by hand (framing from `stopgate::smpp::pdu`,
//! which bounds `command_length`), independent of stopgate's session layer.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use stopgate::smpp::pdu;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SUBMIT_SM: u32 = 0x04;
const GENERIC_NACK: u32 = 0x8000_0000;

fn put_pdu(out: &mut BytesMut, id: u32, status: u32, seq: u32, body: &[u8]) {
    out.put_u32(16 + body.len() as u32);
    out.put_u32(id);
    out.put_u32(status);
    out.put_u32(seq);
    out.put_slice(body);
}

fn cstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

// ---- the SMSC ----

#[derive(Default)]
struct Counts {
    submits: AtomicU64,
    binds: AtomicU64,
    malformed: AtomicU64,
    next_id: AtomicU64,
}

async fn smsc_conn(mut socket: TcpStream, counts: Arc<Counts>) {
    let _ = socket.set_nodelay(true);
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut out = BytesMut::with_capacity(64 * 1024);
    loop {
        match socket.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut close = false;
        loop {
            let (h, body) = match pdu::take_frame(&mut buf) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(_) => {
                    counts.malformed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            };
            let resp = h.command_id | 0x8000_0000;
            match h.command_id {
                // bind_receiver, bind_transmitter, bind_transceiver
                0x01 | 0x02 | 0x09 => {
                    counts.binds.fetch_add(1, Ordering::Relaxed);
                    let mut b = Vec::new();
                    cstr(&mut b, "bench-smsc");
                    put_pdu(&mut out, resp, 0, h.sequence_number, &b);
                }
                SUBMIT_SM => {
                    if body.len() < 17 {
                        counts.malformed.fetch_add(1, Ordering::Relaxed);
                        put_pdu(&mut out, resp, 0x02, h.sequence_number, &[]);
                        continue;
                    }
                    counts.submits.fetch_add(1, Ordering::Relaxed);
                    let id = counts.next_id.fetch_add(1, Ordering::Relaxed);
                    let mut b = format!("{id:X}").into_bytes();
                    b.push(0);
                    put_pdu(&mut out, resp, 0, h.sequence_number, &b);
                }
                // enquire_link
                0x15 => put_pdu(&mut out, resp, 0, h.sequence_number, &[]),
                // unbind
                0x06 => {
                    put_pdu(&mut out, resp, 0, h.sequence_number, &[]);
                    close = true;
                }
                id if id & 0x8000_0000 != 0 => {}
                _ => put_pdu(&mut out, GENERIC_NACK, 0x03, h.sequence_number, &[]),
            }
        }
        if !out.is_empty() {
            if socket.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        if close {
            return;
        }
    }
}

async fn smsc(listen: SocketAddr, stats: SocketAddr) -> Result<(), String> {
    let counts = Arc::new(Counts::default());
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let stats_listener = TcpListener::bind(stats)
        .await
        .map_err(|e| format!("cannot listen on {stats}: {e}"))?;
    println!("smpp-bench smsc listening on {listen}, stats on {stats}");
    let c = counts.clone();
    let app = axum::Router::new().route(
        "/stats",
        axum::routing::get(move || {
            let c = c.clone();
            async move {
                format!(
                    "{{\"submits\":{},\"binds\":{},\"malformed\":{}}}",
                    c.submits.load(Ordering::Relaxed),
                    c.binds.load(Ordering::Relaxed),
                    c.malformed.load(Ordering::Relaxed)
                )
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(stats_listener, app).await;
    });
    loop {
        tokio::select! {
            r = listener.accept() => {
                if let Ok((socket, _)) = r {
                    tokio::spawn(smsc_conn(socket, counts.clone()));
                }
            }
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

// ---- the load ----

struct Load {
    addr: SocketAddr,
    system_id: String,
    password: String,
    window: usize,
    seconds: f64,
    prefix: String,
    service_type: String,
    body: String,
}

fn submit_body(l: &Load, number: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(64 + l.body.len());
    cstr(&mut b, &l.service_type);
    b.extend([5, 0]); // source: alphanumeric
    cstr(&mut b, "ACME");
    b.extend([1, 1]); // destination: international, ISDN
    cstr(
        &mut b,
        &format!("1{}{:07}", l.prefix, 2_000_000 + number % 8_000_000),
    );
    b.extend([0, 0, 0]); // esm_class, protocol_id, priority_flag
    cstr(&mut b, ""); // schedule_delivery_time
    cstr(&mut b, ""); // validity_period
    b.extend([0, 0, 0, 0]); // registered_delivery, replace_if_present, data_coding (GSM), sm_default_msg_id
    b.push(l.body.len() as u8);
    b.extend_from_slice(l.body.as_bytes());
    b
}

async fn read_frame(
    rd: &mut tokio::net::tcp::OwnedReadHalf,
    buf: &mut BytesMut,
) -> Option<(pdu::Header, BytesMut)> {
    loop {
        if let Ok(Some(f)) = pdu::take_frame(buf) {
            return Some(f);
        }
        match rd.read_buf(buf).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

async fn load(l: Load) -> Result<String, String> {
    let stream = TcpStream::connect(l.addr)
        .await
        .map_err(|e| format!("connect {}: {e}", l.addr))?;
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut out = BytesMut::new();
    let mut b = Vec::new();
    cstr(&mut b, &l.system_id);
    cstr(&mut b, &l.password);
    cstr(&mut b, "");
    b.extend([0x34, 0, 0]);
    cstr(&mut b, "");
    put_pdu(&mut out, 0x02, 0, 1, &b);
    wr.write_all(&out).await.map_err(|e| e.to_string())?;
    out.clear();
    let (h, _) = read_frame(&mut rd, &mut buf)
        .await
        .ok_or("no bind_transmitter_resp")?;
    if h.command_id != 0x8000_0002 || h.command_status != 0 {
        return Err(format!("bind refused: status {:#x}", h.command_status));
    }

    let window = Arc::new(tokio::sync::Semaphore::new(l.window));
    // Send times by sequence number, in a ring far larger than the window.
    const RING: usize = 1 << 16;
    let sent_at: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; RING]));
    let statuses: Arc<Mutex<BTreeMap<String, u64>>> = Default::default();
    let latencies: Arc<Mutex<Vec<u32>>> = Default::default();
    let answered = Arc::new(AtomicU64::new(0));
    let reader = {
        let (window, sent_at, statuses, latencies, answered) = (
            window.clone(),
            sent_at.clone(),
            statuses.clone(),
            latencies.clone(),
            answered.clone(),
        );
        // (A busy bind is never silent: stopgate sends no enquire_link.)
        tokio::spawn(async move {
            while let Some((h, _)) = read_frame(&mut rd, &mut buf).await {
                match h.command_id {
                    0x8000_0004 | GENERIC_NACK => {
                        let t = sent_at.lock().unwrap()[h.sequence_number as usize % RING].take();
                        if let Some(t) = t {
                            latencies
                                .lock()
                                .unwrap()
                                .push(t.elapsed().as_micros() as u32);
                        }
                        let key = if h.command_status == 0 {
                            "ok".to_string()
                        } else {
                            format!("{:#010x}", h.command_status)
                        };
                        *statuses.lock().unwrap().entry(key).or_insert(0) += 1;
                        answered.fetch_add(1, Ordering::Relaxed);
                        window.add_permits(1);
                    }
                    _ => {}
                }
            }
        })
    };

    let started = Instant::now();
    let end = started + Duration::from_secs_f64(l.seconds);
    let mut seq: u32 = 2;
    let mut n: u64 = 0;
    while Instant::now() < end {
        // Take what the window allows now, write it in one go.
        let Ok(first) = window.acquire().await else {
            break;
        };
        first.forget();
        let mut batch = 1;
        while let Ok(p) = window.try_acquire() {
            p.forget();
            batch += 1;
        }
        {
            let mut s = sent_at.lock().unwrap();
            let now = Instant::now();
            for _ in 0..batch {
                s[seq as usize % RING] = Some(now);
                put_pdu(&mut out, SUBMIT_SM, 0, seq, &submit_body(&l, n));
                seq = if seq >= 0x7FFF_0000 { 2 } else { seq + 1 };
                n += 1;
            }
        }
        wr.write_all(&out).await.map_err(|e| e.to_string())?;
        out.clear();
    }
    let sending = started.elapsed();
    // The last answers.
    let deadline = Instant::now() + Duration::from_secs(10);
    while answered.load(Ordering::Relaxed) < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    put_pdu(&mut out, 0x06, 0, seq, &[]);
    let _ = wr.write_all(&out).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), reader).await;
    let mut lat = latencies.lock().unwrap().clone();
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        f64::from(lat[i]) / 1000.0
    };
    let done = answered.load(Ordering::Relaxed);
    let statuses = statuses.lock().unwrap().clone();
    let ok = statuses.get("ok").copied().unwrap_or(0);
    let statuses_json: Vec<String> = statuses
        .iter()
        .map(|(k, v)| format!("\"{k}\":{v}"))
        .collect();
    Ok(format!(
        "{{\"requests\":{n},\"answered\":{done},\"ok\":{ok},\"statuses\":{{{}}},\"rps\":{:.1},\"send_seconds\":{:.3},\"seconds\":{:.3},\"p50_ms\":{:.3},\"p90_ms\":{:.3},\"p99_ms\":{:.3},\"max_ms\":{:.3},\"window\":{}}}",
        statuses_json.join(","),
        done as f64 / elapsed.as_secs_f64(),
        sending.as_secs_f64(),
        elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.90),
        pct(0.99),
        lat.last().map_or(0.0, |m| f64::from(*m) / 1000.0),
        l.window,
    ))
}

fn usage() -> ! {
    eprintln!(
        "smpp-bench smsc --listen ADDR --stats ADDR\n\
         smpp-bench load --addr ADDR --system-id ID --password PW [--window N] [--seconds S] [--prefix PPP] [--service-type T] [--body TEXT]"
    );
    std::process::exit(2)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let cmd = args.next().unwrap_or_else(|| usage());
    let mut flags: BTreeMap<String, String> = BTreeMap::new();
    while let Some(k) = args.next() {
        let Some(v) = args.next() else { usage() };
        flags.insert(k.trim_start_matches('-').to_string(), v);
    }
    let get = |k: &str| flags.get(k).cloned();
    let addr = |k: &str| -> SocketAddr {
        get(k)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| usage())
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let result = match cmd.as_str() {
        "smsc" => runtime
            .block_on(smsc(addr("listen"), addr("stats")))
            .map(|_| String::new()),
        "load" => {
            let l = Load {
                addr: addr("addr"),
                system_id: get("system-id").unwrap_or_else(|| usage()),
                password: get("password").unwrap_or_default(),
                window: get("window").and_then(|v| v.parse().ok()).unwrap_or(64),
                seconds: get("seconds").and_then(|v| v.parse().ok()).unwrap_or(10.0),
                prefix: get("prefix").unwrap_or_else(|| "212".into()),
                service_type: get("service-type").unwrap_or_default(),
                body: get("body").unwrap_or_else(|| "ACME: 20% off everything this weekend".into()),
            };
            if l.body.len() > 160 || l.prefix.len() != 3 {
                usage()
            }
            runtime.block_on(load(l))
        }
        _ => usage(),
    };
    match result {
        Ok(line) if !line.is_empty() => println!("{line}"),
        Ok(_) => {}
        Err(e) => {
            eprintln!("smpp-bench: {e}");
            std::process::exit(1);
        }
    }
}
