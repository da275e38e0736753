//! A deployed WordPress driven over HTTP as its administrator would, with
//! curl: the installer, the login, an upload through the media screen.

use std::path::Path;
use std::process::Command;

/// A site at `base` (e.g. "http://127.0.0.1"), with a cookie jar in `dir`.
pub struct WpAdmin {
    pub base: String,
    jar: String,
}

pub const ADMIN: &str = "admin";
pub const ADMIN_PASSWORD: &str = "Correct-horse-battery-9";

fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "60", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

impl WpAdmin {
    pub fn new(base: &str, dir: &Path) -> WpAdmin {
        WpAdmin {
            base: base.to_string(),
            jar: dir.join("cookies").display().to_string(),
        }
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        curl(&[
            "-b",
            &self.jar,
            "-c",
            &self.jar,
            &format!("{}{path}", self.base),
        ])
    }

    /// Runs WordPress's installer (step 2 of install.php).
    pub fn install(&self, title: &str) {
        let (code, body) = curl(&[
            "--data-urlencode",
            &format!("weblog_title={title}"),
            "--data-urlencode",
            &format!("user_name={ADMIN}"),
            "--data-urlencode",
            &format!("admin_password={ADMIN_PASSWORD}"),
            "--data-urlencode",
            &format!("admin_password2={ADMIN_PASSWORD}"),
            "--data-urlencode",
            "admin_email=admin@example.com",
            "--data-urlencode",
            "blog_public=0",
            "--data-urlencode",
            "Submit=Install WordPress",
            &format!("{}/wp-admin/install.php?step=2", self.base),
        ]);
        assert!(
            code == 200 && body.contains("Success"),
            "install: {code} {}",
            &body[..body.len().min(400)]
        );
    }

    pub fn log_in(&self) {
        self.get("/wp-login.php");
        let (code, _) = curl(&[
            "-b",
            &self.jar,
            "-c",
            &self.jar,
            "--data-urlencode",
            &format!("log={ADMIN}"),
            "--data-urlencode",
            &format!("pwd={ADMIN_PASSWORD}"),
            "--data-urlencode",
            "testcookie=1",
            &format!("{}/wp-login.php", self.base),
        ]);
        assert_eq!(code, 302, "log in");
    }

    /// Uploads `file` through the media screen (the browser-less form).
    pub fn upload(&self, file: &Path, mime: &str) {
        let (_, page) = self.get("/wp-admin/media-new.php");
        let nonce = page
            .split("name=\"_wpnonce\" value=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .expect("media-new.php has a nonce (logged in?)")
            .to_string();
        let (code, body) = curl(&[
            "-b",
            &self.jar,
            "-c",
            &self.jar,
            "-F",
            &format!("async-upload=@{};type={mime}", file.display()),
            "-F",
            &format!("_wpnonce={nonce}"),
            "-F",
            "html-upload=Upload",
            &format!("{}/wp-admin/media-new.php", self.base),
        ]);
        assert_eq!(code, 302, "upload: {}", &body[..body.len().min(400)]);
    }
}

impl WpAdmin {
    /// Installs WordPress, logs in, uploads a PNG (written to `file`)
    /// through the media screen, and fetches it through the edge: the
    /// same bytes (WordPress answers a missing file with its 404 page).
    pub fn install_and_upload(&self, title: &str, file: &Path) {
        self.install(title);
        self.log_in();
        std::fs::write(file, png()).unwrap();
        self.upload(file, "image/png");
        let (code, media) = self.get("/?rest_route=/wp/v2/media");
        assert_eq!(code, 200, "{media}");
        let media: serde_json::Value = serde_json::from_str(&media).unwrap();
        let url = media[0]["source_url"]
            .as_str()
            .expect("the upload is listed")
            .to_string();
        assert!(url.contains("/wp-content/uploads/"), "{url}");
        let got = Command::new("curl")
            .args(["-sS", "--max-time", "10", "-D", "-", &url])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&got.stdout);
        assert!(
            text.starts_with("HTTP/1.1 200"),
            "the upload through the edge: {text:.300}"
        );
        assert!(got.stdout.ends_with(&png()), "the upload's bytes");
    }
}

impl WpAdmin {
    /// Publishes a post titled `title` through the REST API (logged in:
    /// the cookie and its nonce); its id.
    pub fn publish(&self, title: &str) -> u64 {
        let (code, nonce) = self.get("/wp-admin/admin-ajax.php?action=rest-nonce");
        assert_eq!(code, 200, "rest nonce: {nonce}");
        let (code, body) = curl(&[
            "-b", &self.jar, "-c", &self.jar,
            "-H", &format!("X-WP-Nonce: {}", nonce.trim()),
            "-H", "Content-Type: application/json",
            "--data", &serde_json::json!({ "title": title, "status": "publish", "content": "written during a test" }).to_string(),
            &format!("{}/?rest_route=/wp/v2/posts", self.base),
        ]);
        assert_eq!(
            code,
            201,
            "publish {title}: {}",
            &body[..body.len().min(400)]
        );
        let post: serde_json::Value = serde_json::from_str(&body).unwrap();
        post["id"].as_u64().expect("the new post's id")
    }

    /// Whether the public site lists a post titled `title` (read through
    /// WordPress, past the page cache: a search query).
    pub fn finds(&self, title: &str) -> bool {
        let (code, body) = curl(&[&format!(
            "{}/?rest_route=/wp/v2/posts&search={title}&_fresh={}",
            self.base,
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        )]);
        code == 200 && body.contains(title)
    }
}

/// A small valid PNG (4×4, red).
pub fn png() -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend(kind);
        out.extend(data);
        let crc = crc32(&out[start..]);
        out.extend(crc.to_be_bytes());
    }
    fn crc32(bytes: &[u8]) -> u32 {
        let mut c = !0u32;
        for b in bytes {
            c ^= u32::from(*b);
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
    // Stored (uncompressed) deflate: 4 rows of filter byte + 4 RGB pixels.
    let row = [0u8, 255, 0, 0, 255, 0, 0, 255, 0, 0, 255, 0, 0];
    let raw: Vec<u8> = row.iter().copied().cycle().take(row.len() * 4).collect();
    let mut z = vec![0x78, 0x01, 1];
    z.extend((raw.len() as u16).to_le_bytes());
    z.extend((!(raw.len() as u16)).to_le_bytes());
    z.extend(&raw);
    let (mut a, mut b) = (1u32, 0u32);
    for x in &raw {
        a = (a + u32::from(*x)) % 65521;
        b = (b + a) % 65521;
    }
    z.extend(((b << 16) | a).to_be_bytes());
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend(4u32.to_be_bytes());
    ihdr.extend(4u32.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &z);
    chunk(&mut out, b"IEND", &[]);
    out
}
