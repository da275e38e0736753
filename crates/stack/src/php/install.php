<?php
// Installs WordPress once, run by `murakumo up` with the PHP CLI; a no-op
// when the site is installed. Secrets come from the environment, never argv.
// Usage: php install.php WP_CONFIG HOME_URL TITLE ADMIN_EMAIL
[$_, $wp_config, $home, $title, $email] = $argv;
$password = getenv('MURAKUMO_ADMIN_PASSWORD');
if (!is_string($password) || $password === '') {
    fwrite(STDERR, "MURAKUMO_ADMIN_PASSWORD is not set\n");
    exit(2);
}
$_SERVER['HTTP_HOST'] = parse_url($home, PHP_URL_HOST) . (parse_url($home, PHP_URL_PORT) ? ':' . parse_url($home, PHP_URL_PORT) : '');
$_SERVER['REQUEST_URI'] = '/';
$_SERVER['SERVER_PROTOCOL'] = 'HTTP/1.1';
define('WP_INSTALLING', true);
require $wp_config;
if (is_blog_installed()) {
    echo "already installed\n";
    exit(0);
}
require_once ABSPATH . 'wp-admin/includes/upgrade.php';
$result = wp_install($title, 'admin', $email, true, '', wp_slash($password));
if (is_wp_error($result)) {
    fwrite(STDERR, $result->get_error_message() . "\n");
    exit(1);
}
update_option('siteurl', $home);
update_option('home', $home);
global $wp_rewrite;
$wp_rewrite->set_permalink_structure('/%postname%/');
// The taxonomies were registered while permalinks were off, so they added
// no rewrite rules (category/, tag/, type/ archives would 404): register
// them again with permalinks on, then write the rules.
create_initial_taxonomies();
$wp_rewrite->flush_rules(false);
echo "installed\n";
