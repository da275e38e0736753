# Shell functions that provision a WordPress stack in a directory: a private
# MariaDB on a unix socket, Debian's WordPress copied in, a php-fpm pool.
# Sourced by scripts/demo and bench/compare.sh. The interim form of
# `murakumo up` (issue 3). Each function is idempotent on an existing DIR.
#
# Needs: $dir (absolute), $repo. Sets: $as_user, $fpm_root, $stack_pids.

stack_pids=()
if [ "$(id -u)" = 0 ]; then as_user=root; fpm_root=(-R); else as_user="$(id -un)"; fpm_root=(); fi

stack_stop() {
    for p in "${stack_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}

# secret NAME: prints DIR/secrets/NAME, generating it (0600) on first use.
secret() {
    mkdir -p -m 700 "$dir/secrets"
    if [ ! -s "$dir/secrets/$1" ]; then
        (umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$dir/secrets/$1")
    fi
    cat "$dir/secrets/$1"
}

stack_mariadb() {
    # A private tmpdir: MariaDB instances sharing /tmp collide on temp tables.
    mkdir -p "$dir/run" "$dir/logs" "$dir/db-tmp"
    if [ ! -d "$dir/db/mysql" ]; then
        mariadb-install-db --no-defaults --datadir="$dir/db" --tmpdir="$dir/db-tmp" --user="$as_user" \
            --auth-root-authentication-method=socket --skip-test-db > "$dir/logs/mariadb-install.log" 2>&1
    fi
    /usr/sbin/mariadbd --no-defaults --datadir="$dir/db" --tmpdir="$dir/db-tmp" --socket="$dir/run/mysqld.sock" \
        --pid-file="$dir/run/mariadb.pid" --user="$as_user" --skip-networking \
        --innodb-buffer-pool-size=64M > "$dir/logs/mariadb.log" 2>&1 &
    stack_pids+=($!)
    for _ in $(seq 150); do mariadb -S "$dir/run/mysqld.sock" -e 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.2; done
    local pass; pass="$(secret db-password)"
    mariadb -S "$dir/run/mysqld.sock" -e "CREATE DATABASE IF NOT EXISTS wordpress;
      CREATE USER IF NOT EXISTS wp@localhost IDENTIFIED BY '$pass'; ALTER USER wp@localhost IDENTIFIED BY '$pass';
      GRANT ALL ON wordpress.* TO wp@localhost;"
}

# stack_wordpress HOME_URL: copies core, writes wp-config.php, installs.
stack_wordpress() {
    local home="$1" wp="$dir/wordpress"
    if [ ! -f "$wp/wp-settings.php" ]; then
        mkdir -p "$wp"
        cp -rL /usr/share/wordpress/. "$wp/" 2>/dev/null || true
        rm -f "$wp/wp-config.php" "$wp/.htaccess"
    fi
    mkdir -p "$wp/wp-content/mu-plugins" "$wp/wp-content/uploads"
    cp "$repo/wordpress/mu-plugins/murakumo-purge.php" "$wp/wp-content/mu-plugins/"
    secret db-password >/dev/null
    {
        echo "<?php"
        echo "define('DB_NAME', 'wordpress'); define('DB_USER', 'wp'); define('DB_HOST', 'localhost:$dir/run/mysqld.sock');"
        echo "define('DB_PASSWORD', trim(file_get_contents('$dir/secrets/db-password')));"
        echo "define('DB_CHARSET', 'utf8mb4'); define('DB_COLLATE', ''); \$table_prefix = 'wp_';"
        for k in AUTH_KEY SECURE_AUTH_KEY LOGGED_IN_KEY NONCE_KEY AUTH_SALT SECURE_AUTH_SALT LOGGED_IN_SALT NONCE_SALT; do
            echo "define('$k', '$(secret "salt-$k")');"
        done
        echo "define('DISALLOW_FILE_EDIT', true); define('FS_METHOD', 'direct'); define('DISABLE_WP_CRON', true);"
        echo "if (!defined('ABSPATH')) { define('ABSPATH', __DIR__ . '/'); }"
        echo "require_once ABSPATH . 'wp-settings.php';"
    } > "$wp/wp-config.php"
    chmod 0644 "$wp/wp-config.php"
    php8.2 "$repo/scripts/lib/install-wordpress.php" "$wp" "$home" "$(secret admin-password)"
}

# stack_php_fpm OPS_PORT: starts one pool on DIR/run/php.sock.
stack_php_fpm() {
    local ops_port="$1"
    secret purge-token >/dev/null
    cat > "$dir/php-fpm.conf" <<CONF
[global]
error_log = $dir/logs/php-fpm.log
daemonize = no
pid = $dir/run/php-fpm.pid
[wordpress]
listen = $dir/run/php.sock
pm = static
pm.max_children = 8
catch_workers_output = yes
clear_env = yes
env[MURAKUMO_PURGE_URL] = http://127.0.0.1:$ops_port/purge
env[MURAKUMO_PURGE_TOKEN_FILE] = $dir/secrets/purge-token
CONF
    rm -f "$dir/run/php.sock"
    php-fpm8.2 "${fpm_root[@]}" -F -y "$dir/php-fpm.conf" > "$dir/logs/php-fpm.out" 2>&1 &
    stack_pids+=($!)
    for _ in $(seq 100); do [ -S "$dir/run/php.sock" ] && break; sleep 0.1; done
}
