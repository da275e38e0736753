//! A site of small PHP scripts and static files, served by a real php-fpm
//! behind the murakumo binary: the fixture of the edge and reliability
//! tests.

use std::path::Path;

use super::{curl, Edge, PhpFpm, Resp};

pub const HOST: &str = "site.test";

/// A site of small PHP scripts and static files behind the edge.
pub struct PhpSite {
    pub dir: tempfile::TempDir,
    pub fpm: PhpFpm,
    /// More php-fpm members of the same pool (see [`PhpSite::start_members`]).
    pub others: Vec<PhpFpm>,
    pub edge: Edge,
}

pub fn write(root: &Path, rel: &str, content: impl AsRef<[u8]>) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

impl PhpSite {
    pub fn start(site_extra: &str, server_extra: &str) -> PhpSite {
        PhpSite::start_with(site_extra, server_extra, 4, "")
    }

    pub fn start_with(
        site_extra: &str,
        server_extra: &str,
        php_workers: usize,
        fpm_extra: &str,
    ) -> PhpSite {
        PhpSite::start_members(site_extra, server_extra, php_workers, fpm_extra, 1)
    }

    /// The site with `members` php-fpm masters of `php_workers` workers
    /// each, all in the site's `php` list (the first is `fpm`).
    pub fn start_members(
        site_extra: &str,
        server_extra: &str,
        php_workers: usize,
        fpm_extra: &str,
        members: usize,
    ) -> PhpSite {
        let dir = tempfile::Builder::new()
            .prefix("murakumo-edge-")
            .tempdir()
            .unwrap();
        let root = dir.path().join("root");
        // Over 1 KiB: cached pages from 1 KiB on are stored compressed.
        write(&root, "index.php", "<?php header('Content-Type: text/html'); echo 'front controller: ', $_SERVER['REQUEST_URI'], str_repeat(' pad', 300);");
        write(&root, "info.php", "<?php header('Content-Type: application/json'); header('Cache-Control: no-store'); echo json_encode($_SERVER + ['BODY_LEN' => strlen(file_get_contents('php://input'))]);");
        write(&root, "slow.php", "<?php usleep(500000); header('Content-Type: text/html'); echo 'slow page ', microtime(true);");
        write(
            &root,
            "sleep.php",
            "<?php sleep((int) ($_GET['s'] ?? 2)); echo 'finished';",
        );
        // Records which member ran it (a file `ran-ID-MEMBER` beside the
        // root), then holds its worker for 2 s.
        write(&root, "hold.php", "<?php header('Cache-Control: no-store'); touch(dirname(__DIR__) . '/ran-' . preg_replace('/\\W/', '', $_GET['id'] ?? '') . '-' . getenv('MEMBER')); sleep(2); echo 'held by ', getenv('MEMBER');");
        write(&root, "xmlrpc.php", "<?php echo 'xmlrpc reached';");
        write(
            &root,
            "warn.php",
            "<?php error_log('marker-from-php-stderr'); echo 'ok';",
        );
        // Streams for 5 s, then records that it ran to the end.
        let done = dir.path().join("stream-finished");
        write(&root, "stream.php", format!("<?php header('Cache-Control: no-store'); for ($i = 0; $i < 50; $i++) {{ echo str_repeat('x', 8192), \"\\n\"; flush(); usleep(100000); }} file_put_contents('{}', 'done');", done.display()));
        write(
            &root,
            "wp-content/uploads/evil.php",
            "<?php echo 'EXECUTED';",
        );
        write(
            &root,
            "wp-content/uploads/photo.jpg",
            [0xffu8, 0xd8, 0xff, 0xe0],
        );
        write(&root, "wp-config.php", "<?php // DB_PASSWORD secret");
        write(&root, "wp-config.php.bak", "secret");
        write(&root, ".git/config", "[core]");
        write(&root, "dump.sql", "INSERT");
        let css = "body { color: red; }\n".repeat(100);
        write(&root, "style.css", &css);
        write(&root, "style.css.br", b"BROTLI-BYTES");
        write(&root, "style.css.gz", b"GZIP-BYTES");
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        write(&root, "big.bin", &big);
        // Each member tells its scripts its number (getenv('MEMBER')).
        let member = |k: usize| {
            let name = if k == 0 {
                "site".to_string()
            } else {
                format!("site{k}")
            };
            let env = [("MEMBER", k.to_string())];
            PhpFpm::start_sized(dir.path(), &name, &env, php_workers, fpm_extra)
        };
        let fpm = member(0);
        let others: Vec<PhpFpm> = (1..members).map(member).collect();
        let php = std::iter::once(&fpm)
            .chain(&others)
            .map(|f| format!("\"unix:{}\"", f.socket.display()))
            .collect::<Vec<_>>()
            .join(", ");
        let config = format!(
            "[server]\nlisten = [\"127.0.0.1:{{port}}\"]\nops_listen = \"127.0.0.1:{{ops_port}}\"\ndrain_delay = \"1s\"\ngrace = \"10s\"\n{server_extra}\n\n[[site]]\nname = \"site\"\nhosts = [\"{HOST}\", \"*.{HOST}\", \"127.0.0.1\"]\nroot = \"{root}\"\nphp = [{php}]\n{guard}{site_extra}\n",
            root = root.display(),
            // Not WordPress: its scripts (info.php, slow.php) are its entry
            // points. A test that wants the WordPress rules says so.
            guard = if site_extra.contains("[site.guard]") {
                ""
            } else {
                "guard = { entry_points_only = false }\n"
            },
        );
        let edge = Edge::start(dir.path(), &config);
        PhpSite {
            dir,
            fpm,
            others,
            edge,
        }
    }

    /// php-fpm member `k` (0 is `fpm`).
    pub fn member(&mut self, k: usize) -> &mut PhpFpm {
        match k {
            0 => &mut self.fpm,
            k => &mut self.others[k - 1],
        }
    }

    pub fn get(&self, path: &str, args: &[&str]) -> Resp {
        let host = format!("Host: {HOST}:{}", self.edge.port);
        let mut all = vec!["--path-as-is", "-H", host.as_str()];
        all.extend_from_slice(args);
        curl(&self.edge.url(path), &all)
    }

    pub fn root(&self) -> std::path::PathBuf {
        self.dir.path().join("root")
    }
}
