<?php
/**
 * Plugin Name: murakumo server
 * Description: Tells WordPress what the server in front of it does. murakumo sends every URL that is not a file to index.php, as nginx's try_files does, and reads no .htaccess: pretty permalinks need neither an index.php prefix nor rewrite rules in a file.
 * Version: 0.1.0
 *
 * WordPress knows which servers rewrite URLs by SERVER_SOFTWARE: Apache with
 * mod_rewrite, nginx, IIS. For any other it puts /index.php/ in front of
 * every permalink and asks for .htaccess rules on every save of Settings →
 * Permalinks. murakumo's front-controller rule is nginx's, so WordPress is
 * given its nginx branch: permalinks without index.php, no .htaccess
 * written or asked for. Only requests murakumo serves are told so.
 *
 * wp-includes/vars.php sets $is_nginx from SERVER_SOFTWARE after the
 * must-use plugins load, so the correction comes at the first hook after
 * it, before any screen or rewrite code reads it.
 */

if (!defined('ABSPATH')) {
    exit;
}

if (strpos($_SERVER['SERVER_SOFTWARE'] ?? '', 'murakumo/') === 0) {
    add_action('plugins_loaded', function () {
        $GLOBALS['is_nginx'] = true;
        $GLOBALS['is_apache'] = false;
    }, PHP_INT_MIN);
}

/*
 * Who the site's users are is not told to visitors WordPress does not know
 * ([site.guard] hide_users, on unless the edge says MURAKUMO_HIDE_USERS=0):
 * the REST users routes, ?author=N (which redirects to the author's archive,
 * whose address is the login name) and the users sitemap. The edge refuses
 * requests that carry no login cookie at all; WordPress checks the cookie.
 */
if (($_SERVER['MURAKUMO_HIDE_USERS'] ?? '1') !== '0') {
    add_filter('rest_endpoints', function ($endpoints) {
        if (is_user_logged_in()) {
            return $endpoints;
        }
        foreach (array_keys($endpoints) as $route) {
            if (strpos($route, '/wp/v2/users') === 0) {
                unset($endpoints[$route]);
            }
        }
        return $endpoints;
    });
    add_filter('wp_sitemaps_add_provider', function ($provider, $name) {
        return $name === 'users' ? false : $provider;
    }, 10, 2);
    // WordPress takes query variables from the query and from a POST body
    // alike: `author` from either is refused (pretty author archives use
    // `author_name`, which names no number to count through).
    add_action('parse_request', function ($wp) {
        if (isset($wp->query_vars['author']) && !is_admin() && !is_user_logged_in()) {
            unset($wp->query_vars['author']);
            $wp->query_vars['error'] = '404';
        }
    });
}

/*
 * Core is read-only here and replaced as a whole by murakumo (wp-config.php
 * says how: MURAKUMO_CORE_UPGRADE), so WordPress's own background updates are
 * off on purpose. Site Health says so instead of reporting them broken.
 */
if (defined('MURAKUMO_CORE_UPGRADE')) {
    add_filter('site_status_tests', function ($tests) {
        unset($tests['async']['background_updates']);
        $tests['direct']['murakumo_core_updates'] = [
            'label' => 'WordPress core updates',
            'test' => function () {
                return [
                    'label' => 'WordPress core is updated by murakumo',
                    'status' => 'good',
                    'badge' => ['label' => __('Security'), 'color' => 'blue'],
                    'description' => '<p>Core is read-only on this server, so WordPress does not update itself: a plugin cannot replace it, and an update cannot leave it half-written. To update it, '
                        . esc_html(MURAKUMO_CORE_UPGRADE) . '.</p>',
                    'actions' => '',
                    'test' => 'murakumo_core_updates',
                ];
            },
        ];
        return $tests;
    });
}
