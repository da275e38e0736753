<?php
// WordPress's database upgrade, run by `murakumo upgrade` with the PHP CLI
// (what wp-admin/upgrade.php does) from the new core, before it serves: a
// core that does not even load fails here, and nothing was swapped.
// Usage: php upgrade.php WP_CONFIG HOME_URL CORE_DIR
[$_, $wp_config, $home, $core] = $argv;
define('ABSPATH', rtrim($core, '/') . '/');
$_SERVER['HTTP_HOST'] = parse_url($home, PHP_URL_HOST) . (parse_url($home, PHP_URL_PORT) ? ':' . parse_url($home, PHP_URL_PORT) : '');
$_SERVER['REQUEST_URI'] = '/';
$_SERVER['SERVER_PROTOCOL'] = 'HTTP/1.1';
define('WP_INSTALLING', true);
require $wp_config;
require_once ABSPATH . 'wp-admin/includes/upgrade.php';
global $wpdb, $wp_db_version, $wp_version;
$before = (int) get_option('db_version');
wp_upgrade();
if ($wpdb->last_error !== '') {
    fwrite(STDERR, "the database upgrade failed: {$wpdb->last_error}\n");
    exit(1);
}
$after = (int) get_option('db_version');
if ($after !== (int) $wp_db_version) {
    fwrite(STDERR, "the database is at version $after, core wants $wp_db_version\n");
    exit(1);
}
echo "$wp_version $before $after\n";
