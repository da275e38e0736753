<?php
// Usage: php install-wordpress.php DOCROOT HOME_URL ADMIN_PASSWORD
// Installs WordPress once (a no-op when installed) with pretty permalinks.
[$_, $root, $home, $password] = $argv;
$_SERVER['HTTP_HOST'] = parse_url($home, PHP_URL_HOST) . (parse_url($home, PHP_URL_PORT) ? ':' . parse_url($home, PHP_URL_PORT) : '');
$_SERVER['REQUEST_URI'] = '/';
define('WP_INSTALLING', true);
require $root . '/wp-load.php';
if (is_blog_installed()) {
    echo "WordPress already installed\n";
    exit(0);
}
require_once ABSPATH . 'wp-admin/includes/upgrade.php';
wp_install('murakumo', 'admin', 'admin@example.com', true, '', $password);
update_option('siteurl', $home);
update_option('home', $home);
global $wp_rewrite;
$wp_rewrite->set_permalink_structure('/%postname%/');
$wp_rewrite->flush_rules(false);
echo "WordPress installed at $home\n";
