//! The port keeper (`murakumo portkeeper`): holds a node's public ports and
//! hands every accepted connection to one of the edges connected to its
//! Unix socket, round robin over those that are ready. It never reads a
//! byte of a connection: the edge gets the socket itself (real client
//! address, TLS in the edge) and the keeper's cost is one `sendmsg` per
//! connection.
//!
//! What it guarantees:
//! - **An edge leaving loses nothing.** A draining edge says so, the keeper
//!   answers once its last connection is sent, and hands new ones to the
//!   others. With no edge ready it stops accepting: connections wait in the
//!   kernel's queue (clients retry SYNs) until an edge connects; after
//!   [`NO_EDGE`] without one, it closes new connections at once (clients
//!   get an error, not a hang) until an edge is back.
//! - **The keeper itself is replaced without closing its ports.** A new
//!   keeper connects to the old one's socket and asks for the listening
//!   sockets (`T`); the old one stops accepting, passes them (`L`), and
//!   idles until it is stopped. The same sockets, so nothing queued is
//!   reset, and no `SO_REUSEPORT` group or `tcp_migrate_req` is needed.
//! - **Only its own account's processes** (and root) may connect: the peer
//!   credentials are checked, and the socket lives in a directory of that
//!   account's.
//!
//! Started as root (binding ports below 1024 on the host's network), it
//! becomes `Options::user` first thing, keeping only the right to bind
//! those ports until they are bound, before any thread exists.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{mpsc, watch, Notify};

use crate::wire::{self, Kind};

/// How long a connection accepted just before the last edge left waits
/// for another edge before it is closed.
const HOLD: Duration = Duration::from_secs(30);

/// With no edge for this long (one that nobody restarts: compose does not
/// restart a container stopped with `docker kill`), new connections are
/// closed at once instead of waiting in the queue for good, until an edge
/// is back.
const NO_EDGE: Duration = Duration::from_secs(15);

#[derive(Debug, Clone)]
pub struct Options {
    /// Plain-HTTP ports (e.g. 0.0.0.0:80).
    pub http: Vec<SocketAddr>,
    /// Ports whose connections are TLS (e.g. 0.0.0.0:443).
    pub https: Vec<SocketAddr>,
    /// The hand-off socket the edges connect to.
    pub socket: PathBuf,
    /// The uid (and gid) to run as once the ports are bound, when started
    /// as root (0: stay root).
    pub user: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum KeeperError {
    #[error("cannot listen on {addr}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("the hand-off socket {path}")]
    Socket { path: PathBuf, source: io::Error },
    #[error("taking over from the keeper at {path}: {message}")]
    TakeOver { path: PathBuf, message: String },
    #[error("cannot drop privileges to uid {uid}")]
    Privileges { uid: u32, source: io::Error },
}

/// A keeper with its ports bound (or taken over) and its privileges
/// dropped, not yet serving: made before the async runtime starts.
pub struct Prepared {
    listeners: Vec<(Kind, std::net::TcpListener)>,
    control: std::os::unix::net::UnixListener,
    private_path: PathBuf,
    socket: PathBuf,
    predecessor: Option<std::os::unix::net::UnixStream>,
    /// The control socket is at `socket` already.
    installed: bool,
}

impl Prepared {
    /// A keeper inside an edge for listening sockets a stopping keeper
    /// parked there: its hand-off socket is moved onto `socket` at once,
    /// so the edges (this one included) reconnect to it and the next
    /// keeper takes the sockets from it.
    pub fn parked(
        listeners: Vec<(Kind, std::net::TcpListener)>,
        socket: &Path,
    ) -> Result<Prepared, KeeperError> {
        let sock_err = |source| KeeperError::Socket {
            path: socket.to_path_buf(),
            source,
        };
        let private_path = private_path(socket);
        let control = control_socket(&private_path).map_err(sock_err)?;
        std::fs::rename(&private_path, socket).map_err(sock_err)?;
        Ok(Prepared {
            listeners,
            control,
            private_path,
            socket: socket.to_path_buf(),
            predecessor: None,
            installed: true,
        })
    }
}

/// The hand-off socket, listening at `path`, for its owner alone.
fn control_socket(path: &Path) -> io::Result<std::os::unix::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::remove_file(path);
    let control = std::os::unix::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(control)
}

/// Takes the listeners over from a keeper already serving `opts.socket`,
/// or binds them; binds what the options add, closes what they drop; drops
/// privileges when root; opens the hand-off socket at a private path
/// (moved onto `opts.socket` by [`run`]).
pub fn prepare(opts: &Options) -> Result<Prepared, KeeperError> {
    let sock_err = |source| KeeperError::Socket {
        path: opts.socket.clone(),
        source,
    };
    // The socket's directory is the account's alone (root without
    // CAP_DAC_OVERRIDE may not enter it): become that account first,
    // keeping only the right to bind low ports until they are bound.
    let dropping = rustix::process::getuid().is_root() && opts.user != 0;
    if dropping {
        become_user(opts.user)?;
    }
    let (mut held, predecessor) = match std::os::unix::net::UnixStream::connect(&opts.socket) {
        Ok(s) => {
            let held = take_over(&s).map_err(|message| KeeperError::TakeOver {
                path: opts.socket.clone(),
                message,
            })?;
            (held, Some(s))
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            (Vec::new(), None)
        }
        Err(e) => return Err(sock_err(e)),
    };
    let wanted: Vec<(Kind, SocketAddr)> = opts
        .http
        .iter()
        .map(|a| (Kind::Http, *a))
        .chain(opts.https.iter().map(|a| (Kind::Https, *a)))
        .collect();
    let mut listeners = Vec::new();
    for (kind, addr) in wanted {
        let found = held
            .iter()
            .position(|(k, l)| *k == kind && l.local_addr().ok() == Some(addr));
        match found {
            Some(i) => listeners.push(held.swap_remove(i)),
            None => listeners.push((kind, bind(addr)?)),
        }
    }
    // What the predecessor held and the options no longer name is closed.
    drop(held);
    if dropping {
        use rustix::thread::{set_capabilities, CapabilitySet, CapabilitySets};
        let none = CapabilitySets {
            effective: CapabilitySet::empty(),
            permitted: CapabilitySet::empty(),
            inheritable: CapabilitySet::empty(),
        };
        set_capabilities(None, none).map_err(|e| KeeperError::Privileges {
            uid: opts.user,
            source: e.into(),
        })?;
    }
    let private_path = private_path(&opts.socket);
    let control = control_socket(&private_path).map_err(sock_err)?;
    Ok(Prepared {
        listeners,
        control,
        private_path,
        socket: opts.socket.clone(),
        predecessor,
        installed: false,
    })
}

/// The listening sockets of the keeper at the other end of `s`.
fn take_over(
    s: &std::os::unix::net::UnixStream,
) -> Result<Vec<(Kind, std::net::TcpListener)>, String> {
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    wire::send_now(s.as_fd(), &[wire::TAKE_OVER], &[], false).map_err(|e| e.to_string())?;
    let mut buf = [0u8; 2 + wire::MAX_FDS];
    let (n, fds) = wire::recv_now(s.as_fd(), &mut buf, false).map_err(|e| e.to_string())?;
    if n < 2 || buf[0] != wire::LISTENERS || usize::from(buf[1]) != fds.len() || n != 2 + fds.len()
    {
        return Err(format!(
            "it answered {:?} with {} descriptors",
            &buf[..n],
            fds.len()
        ));
    }
    buf[2..n]
        .iter()
        .zip(fds)
        .map(|(k, fd)| {
            let kind = Kind::from_byte(*k).ok_or_else(|| format!("unknown listener kind {k}"))?;
            Ok((kind, std::net::TcpListener::from(fd)))
        })
        .collect()
}

/// A listening socket that another keeper may join (`SO_REUSEPORT`) when
/// it cannot take this one over.
fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, KeeperError> {
    use rustix::net::{sockopt, AddressFamily, SocketType};
    let err = |e: rustix::io::Errno| KeeperError::Bind {
        addr,
        source: e.into(),
    };
    let family = if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let fd = rustix::net::socket_with(
        family,
        SocketType::STREAM,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )
    .map_err(err)?;
    sockopt::set_socket_reuseaddr(&fd, true).map_err(err)?;
    sockopt::set_socket_reuseport(&fd, true).map_err(err)?;
    rustix::net::bind(&fd, &addr).map_err(err)?;
    rustix::net::listen(&fd, 4096).map_err(err)?;
    Ok(std::net::TcpListener::from(fd))
}

/// Root → `uid`: no supplementary groups, then the group, then the user,
/// keeping of root's capabilities only `CAP_NET_BIND_SERVICE` (if it had
/// it), which [`prepare`] drops once the ports are bound. The process has
/// one thread here, so the per-thread calls are the whole process's.
fn become_user(uid: u32) -> Result<(), KeeperError> {
    use rustix::thread::{
        capabilities, set_capabilities, set_keep_capabilities, set_thread_groups,
        set_thread_res_gid, set_thread_res_uid, CapabilitySet, CapabilitySets,
    };
    let err = |e: rustix::io::Errno| KeeperError::Privileges {
        uid,
        source: e.into(),
    };
    let keep = capabilities(None).map_err(err)?.permitted & CapabilitySet::NET_BIND_SERVICE;
    let gid = rustix::process::Gid::from_raw(uid);
    let user = rustix::process::Uid::from_raw(uid);
    set_keep_capabilities(true).map_err(err)?;
    set_thread_groups(&[]).map_err(err)?;
    set_thread_res_gid(gid, gid, gid).map_err(err)?;
    set_thread_res_uid(user, user, user).map_err(err)?;
    set_keep_capabilities(false).map_err(err)?;
    if rustix::process::getuid().is_root() {
        return Err(err(rustix::io::Errno::PERM));
    }
    let sets = CapabilitySets {
        effective: keep,
        permitted: keep,
        inheritable: CapabilitySet::empty(),
    };
    set_capabilities(None, sets).map_err(err)?;
    Ok(())
}

fn private_path(socket: &Path) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut name = socket.as_os_str().to_owned();
    name.push(format!(".{}.{nanos}", std::process::id()));
    PathBuf::from(name)
}

/// An edge connected to the keeper.
struct Link {
    stream: UnixStream,
    /// Taking connections (false once it drains or goes).
    ready: AtomicBool,
    /// Held while a connection is sent, so the answer to a drain comes
    /// after the last connection sent to it.
    sending: tokio::sync::Mutex<()>,
    /// The edge said it holds the listeners parked with it.
    held: Notify,
}

/// The edges, and a wake-up for the accept loops when one becomes ready.
#[derive(Default)]
struct Edges {
    links: Mutex<Vec<Arc<Link>>>,
    changed: Notify,
    next: AtomicUsize,
}

impl Edges {
    fn ready(&self) -> Vec<Arc<Link>> {
        let links = self.links.lock().unwrap_or_else(|p| p.into_inner());
        links
            .iter()
            .filter(|l| l.ready.load(Ordering::SeqCst))
            .cloned()
            .collect()
    }

    fn add(&self, link: Arc<Link>) {
        self.links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(link);
        self.changed.notify_waiters();
    }

    fn remove(&self, link: &Arc<Link>) {
        link.ready.store(false, Ordering::SeqCst);
        self.links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|l| !Arc::ptr_eq(l, link));
    }

    fn count(&self) -> usize {
        self.links.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Waits until some edge is ready.
    async fn wait_ready(&self) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.ready().is_empty() {
                return;
            }
            notified.await;
        }
    }

    /// Hands `conn` to a ready edge, round robin; an edge that cannot take
    /// it is dropped from the list. With none ready, waits for one up to
    /// [`HOLD`], then closes the connection.
    async fn hand(&self, kind: Kind, conn: TcpStream) {
        let deadline = tokio::time::Instant::now() + HOLD;
        loop {
            let ready = self.ready();
            let start = self.next.fetch_add(1, Ordering::Relaxed);
            for i in 0..ready.len() {
                let link = &ready[(start + i) % ready.len()];
                let _sending = link.sending.lock().await;
                if !link.ready.load(Ordering::SeqCst) {
                    continue;
                }
                let fd: BorrowedFd<'_> = conn.as_fd();
                let sent = tokio::time::timeout(
                    Duration::from_secs(1),
                    wire::send(&link.stream, &[kind.byte()], &[fd]),
                )
                .await;
                match sent {
                    Ok(Ok(())) => return,
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "an edge's hand-off socket failed; dropping it");
                        self.remove(link);
                    }
                    Err(_) => {
                        tracing::warn!("an edge took no connection for 1 s; trying another");
                    }
                }
            }
            if tokio::time::timeout_at(deadline, self.wait_ready())
                .await
                .is_err()
            {
                tracing::warn!(
                    fd = conn.as_raw_fd(),
                    "no edge for {HOLD:?}; closing a waiting connection"
                );
                return;
            }
        }
    }
}

/// Serves until `shutdown` resolves: moves the hand-off socket onto its
/// path, tells a predecessor it may stop, accepts and hands connections
/// over, and gives the listeners to a successor that asks.
pub async fn run(
    p: Prepared,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), KeeperError> {
    let sock_err = |source| KeeperError::Socket {
        path: p.socket.clone(),
        source,
    };
    p.control.set_nonblocking(true).map_err(sock_err)?;
    let control = UnixListener::from_std(p.control).map_err(sock_err)?;
    let mut listeners = Vec::new();
    for (kind, l) in p.listeners {
        let addr = l.local_addr().map_err(sock_err)?;
        l.set_nonblocking(true)
            .and_then(|()| TcpListener::from_std(l))
            .map(|l| listeners.push((kind, l)))
            .map_err(|source| KeeperError::Bind { addr, source })?;
    }
    if !p.installed {
        std::fs::rename(&p.private_path, &p.socket).map_err(sock_err)?;
    }
    if let Some(pred) = p.predecessor {
        // It stops accepting when it sends its listeners; this tells it
        // that edges reconnecting reach this keeper now.
        let _ = wire::send_now(pred.as_fd(), &[wire::KEPT], &[], false);
        tracing::info!("took the listeners over from the previous keeper");
    }
    for (kind, l) in &listeners {
        tracing::info!(addr = %l.local_addr().map_or_else(|_| "?".into(), |a| a.to_string()), ?kind, "keeping");
    }
    let edges = Arc::new(Edges::default());
    let (successor_tx, mut successor_rx) = mpsc::channel::<UnixStream>(1);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut accepting = Vec::new();
    for (kind, l) in listeners {
        accepting.push(tokio::spawn(accept_loop(
            l,
            kind,
            edges.clone(),
            stop_rx.clone(),
        )));
    }
    tokio::pin!(shutdown);
    let successor = loop {
        tokio::select! {
            c = control.accept() => admit(c, &edges, &successor_tx).await,
            s = successor_rx.recv() => if let Some(s) = s { break Some(s) },
            () = &mut shutdown => break None,
        }
    };
    let _ = stop_tx.send(true);
    let mut held = Vec::new();
    for task in accepting {
        if let Ok(l) = task.await {
            held.push(l);
        }
    }
    let Some(successor) = successor else {
        if park(&held, &edges).await {
            tracing::info!("stopping; an edge holds the ports for the next keeper");
        } else {
            tracing::info!("stopping; the ports close");
        }
        return Ok(());
    };
    let (msg, fds) = listeners_message(wire::LISTENERS, &held);
    let passed = wire::send(&successor, &msg, &fds).await;
    let mut kept = [0u8; 1];
    let answered = match passed {
        Ok(()) => tokio::time::timeout(Duration::from_secs(10), wire::recv(&successor, &mut kept))
            .await
            .is_ok_and(|r| r.is_ok_and(|(n, _)| n == 1 && kept[0] == wire::KEPT)),
        Err(_) => false,
    };
    if !answered {
        // The successor died on the way: this keeper still holds the
        // ports and serves on (its edges never left).
        tracing::error!("the new keeper did not confirm; serving on");
        return Box::pin(resume(held, control, edges, shutdown)).await;
    }
    drop(held);
    drop(control);
    // Edges see their link end and reconnect to the path: the successor.
    let links: Vec<Arc<Link>> =
        std::mem::take(&mut *edges.links.lock().unwrap_or_else(|p| p.into_inner()));
    for l in &links {
        l.ready.store(false, Ordering::SeqCst);
        let _ = rustix::net::shutdown(&l.stream, rustix::net::Shutdown::Both);
    }
    tracing::info!(
        edges = links.len(),
        "gave the listeners to the new keeper; idle until stopped"
    );
    shutdown.await;
    Ok(())
}

/// `tag`, the count and the kinds of `held`, and their descriptors.
fn listeners_message(tag: u8, held: &[(Kind, TcpListener)]) -> (Vec<u8>, Vec<BorrowedFd<'_>>) {
    let mut msg = vec![tag, held.len() as u8];
    msg.extend(held.iter().map(|(k, _)| k.byte()));
    (msg, held.iter().map(|(_, l)| l.as_fd()).collect())
}

/// Stopping with no successor (compose replaces a container stop-first):
/// gives the listening sockets to a ready edge to hold, serve, and hand to
/// the next keeper, so the ports never close. Whether an edge took them.
async fn park(held: &[(Kind, TcpListener)], edges: &Edges) -> bool {
    if held.is_empty() {
        return false;
    }
    let (msg, fds) = listeners_message(wire::PARK, held);
    for link in edges.ready() {
        let _sending = link.sending.lock().await;
        if !link.ready.load(Ordering::SeqCst) {
            continue;
        }
        if wire::send(&link.stream, &msg, &fds).await.is_err() {
            continue;
        }
        if tokio::time::timeout(Duration::from_secs(5), link.held.notified())
            .await
            .is_ok()
        {
            return true;
        }
        tracing::warn!("an edge did not confirm it holds the ports; trying another");
    }
    false
}

/// Goes on serving after a takeover that failed half-way.
async fn resume(
    held: Vec<(Kind, TcpListener)>,
    control: UnixListener,
    edges: Arc<Edges>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), KeeperError> {
    let (stop_tx, stop_rx) = watch::channel(false);
    for (kind, l) in held {
        tokio::spawn(accept_loop(l, kind, edges.clone(), stop_rx.clone()));
    }
    let (successor_tx, _successor_rx) = mpsc::channel::<UnixStream>(1);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            c = control.accept() => admit(c, &edges, &successor_tx).await,
            () = &mut shutdown => break,
        }
    }
    let _ = stop_tx.send(true);
    Ok(())
}

/// A connection to the hand-off socket, served by [`link`] if it comes
/// from this keeper's account or root; a failed accept backs off briefly.
async fn admit(
    accepted: io::Result<(UnixStream, tokio::net::unix::SocketAddr)>,
    edges: &Arc<Edges>,
    successor: &mpsc::Sender<UnixStream>,
) {
    match accepted {
        Ok((stream, _)) => {
            let uid = rustix::process::getuid().as_raw();
            if stream
                .peer_cred()
                .is_ok_and(|c| c.uid() == 0 || c.uid() == uid)
            {
                tokio::spawn(link(stream, edges.clone(), successor.clone()));
            } else {
                tracing::warn!("refused a hand-off connection from another account");
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "accepting on the hand-off socket failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Accepts while an edge can take connections (else they wait in the
/// kernel's queue) until `stop`; returns the listener, for a successor.
async fn accept_loop(
    listener: TcpListener,
    kind: Kind,
    edges: Arc<Edges>,
    mut stop: watch::Receiver<bool>,
) -> (Kind, TcpListener) {
    loop {
        let ready = tokio::select! {
            r = tokio::time::timeout(NO_EDGE, edges.wait_ready()) => r.is_ok(),
            _ = stop.changed() => return (kind, listener),
        };
        if !ready {
            tracing::warn!("no edge for {NO_EDGE:?}; closing new connections until one is back");
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        drop(accepted);
                        if !edges.ready().is_empty() {
                            break;
                        }
                    }
                    () = edges.wait_ready() => break,
                    _ = stop.changed() => return (kind, listener),
                }
            }
            tracing::info!("an edge is back; handing connections over again");
            continue;
        }
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((conn, _)) => edges.hand(kind, conn).await,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = stop.changed() => return (kind, listener),
        }
    }
}

/// One connection to the hand-off socket: an edge (`R`, later `D`), or a
/// successor keeper (`T`).
async fn link(stream: UnixStream, edges: Arc<Edges>, successor: mpsc::Sender<UnixStream>) {
    let mut byte = [0u8; 1];
    match wire::recv(&stream, &mut byte).await {
        Ok((1, _)) if byte[0] == wire::READY => {}
        Ok((1, _)) if byte[0] == wire::TAKE_OVER => {
            let _ = successor.send(stream).await;
            return;
        }
        _ => return,
    }
    let link = Arc::new(Link {
        stream,
        ready: AtomicBool::new(true),
        sending: tokio::sync::Mutex::new(()),
        held: Notify::new(),
    });
    edges.add(link.clone());
    tracing::info!(edges = edges.count(), "an edge connected");
    loop {
        match wire::recv(&link.stream, &mut byte).await {
            Ok((1, _)) if byte[0] == wire::DRAIN => {
                let _sending = link.sending.lock().await;
                link.ready.store(false, Ordering::SeqCst);
                let _ = wire::send(&link.stream, &[wire::DRAINED], &[]).await;
                tracing::info!("an edge is draining");
            }
            // A permit: the parking keeper may not be waiting yet.
            Ok((1, _)) if byte[0] == wire::KEPT => link.held.notify_one(),
            Ok((1, _)) => {}
            _ => break,
        }
    }
    edges.remove(&link);
    tracing::info!(edges = edges.count(), "an edge left");
}
