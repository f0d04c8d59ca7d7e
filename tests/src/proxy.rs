//! A TCP proxy on loopback in front of a real server (the registry), that
//! counts the bytes it hands the client and can hold them back after a
//! given count: a pull can so be caught mid-blob, however fast the disk,
//! with the real registry's answers (ranges included) passing unchanged.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

#[derive(Debug, Default)]
struct State {
    /// Bytes handed to clients (server → client) since the last reset.
    sent: u64,
    /// Hold server → client bytes back once `sent` reaches this.
    stall_at: Option<u64>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    stop: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The proxy; stops accepting, and releases what it holds, on drop.
#[derive(Debug)]
pub struct Proxy {
    port: u16,
    shared: Arc<Shared>,
}

impl Proxy {
    /// A proxy to `127.0.0.1:upstream_port`, passing everything through.
    pub fn start(upstream_port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("the proxy's address").port();
        listener
            .set_nonblocking(true)
            .expect("make the proxy's listener non-blocking");
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        std::thread::spawn(move || {
            while !s.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let s = s.clone();
                        std::thread::spawn(move || connect(client, upstream_port, s));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Proxy { port, shared }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Holds bytes back once `bytes` have been handed to clients in all
    /// (counted since the last [`reset`](Proxy::reset)).
    pub fn stall_at(&self, bytes: u64) {
        self.shared.lock().stall_at = Some(bytes);
        self.shared.changed.notify_all();
    }

    /// Passes everything again, and counts from zero.
    pub fn reset(&self) {
        let mut st = self.shared.lock();
        st.stall_at = None;
        st.sent = 0;
        self.shared.changed.notify_all();
    }

    /// Bytes handed to clients since the last [`reset`](Proxy::reset).
    pub fn sent(&self) -> u64 {
        self.shared.lock().sent
    }

    /// Whether bytes are being held back now.
    pub fn stalled(&self) -> bool {
        let st = self.shared.lock();
        st.stall_at.is_some_and(|at| st.sent >= at)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.lock().stall_at = None;
        self.shared.changed.notify_all();
    }
}

fn connect(client: TcpStream, upstream_port: u16, shared: Arc<Shared>) {
    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream_port)) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let (Ok(client_w), Ok(server_r)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    // Client → server: passed as it comes.
    let up = std::thread::spawn(move || {
        let (mut from, mut to) = (client, server);
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Write);
    });
    // Server → client: counted, and held back at the stall point.
    let (mut from, mut to) = (server_r, client_w);
    let mut buf = vec![0u8; 64 * 1024];
    'copy: loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut at = 0;
        while at < n {
            let allowed = {
                let mut st = shared.lock();
                loop {
                    if shared.stop.load(Ordering::SeqCst) {
                        break (n - at) as u64;
                    }
                    match st.stall_at {
                        Some(limit) if st.sent >= limit => {
                            st = shared
                                .changed
                                .wait_timeout(st, Duration::from_millis(100))
                                .unwrap_or_else(|p| p.into_inner())
                                .0;
                        }
                        Some(limit) => break (limit - st.sent).min((n - at) as u64),
                        None => break (n - at) as u64,
                    }
                }
            };
            let end = at + allowed as usize;
            if to.write_all(&buf[at..end]).is_err() {
                break 'copy;
            }
            shared.lock().sent += allowed;
            at = end;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = up.join();
}
