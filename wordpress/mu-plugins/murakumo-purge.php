<?php
/**
 * Plugin Name: murakumo purge
 * Description: Purges murakumo's page cache when content changes: the post, the home page, its archives and feeds; every page on theme, menu, widget, plugin or site-title changes.
 * Version: 0.1.0
 *
 * Configuration comes from the environment (php-fpm `env[...]`, container env):
 *   MURAKUMO_PURGE_URL         e.g. http://127.0.0.1:9090/purge (unset: the plugin does nothing)
 *   MURAKUMO_PURGE_TOKEN       bearer token, or
 *   MURAKUMO_PURGE_TOKEN_FILE  a file holding it (preferred: not visible in the process environment)
 *
 * URLs are collected during the request and sent in one POST at shutdown, so
 * saving a post costs one small request to the edge, whatever changed.
 */

if (!defined('ABSPATH')) {
    exit;
}

final class Murakumo_Purge
{
    /** @var array<string,bool> */
    private static $urls = [];
    /** @var array<string,bool> */
    private static $prefixes = [];

    public static function endpoint()
    {
        $url = getenv('MURAKUMO_PURGE_URL');
        return is_string($url) && $url !== '' ? $url : null;
    }

    private static function token()
    {
        $token = getenv('MURAKUMO_PURGE_TOKEN');
        if (is_string($token) && $token !== '') {
            return trim($token);
        }
        $file = getenv('MURAKUMO_PURGE_TOKEN_FILE');
        if (is_string($file) && $file !== '' && is_readable($file)) {
            return trim((string) file_get_contents($file));
        }
        return null;
    }

    private static function add($url)
    {
        if (is_string($url) && $url !== '') {
            self::$urls[$url] = true;
        }
    }

    /** Queues every URL whose page shows this post. */
    public static function post($post_id)
    {
        $post = get_post($post_id);
        if (!$post || wp_is_post_revision($post) || wp_is_post_autosave($post)) {
            return;
        }
        $type = get_post_type_object($post->post_type);
        if (!$type || !$type->public) {
            return;
        }
        self::add(get_permalink($post));
        self::add(home_url('/'));
        self::$prefixes[home_url('/page/')] = true;
        self::add(get_feed_link());
        self::add(get_post_comments_feed_link($post->ID));
        self::add(get_author_posts_url((int) $post->post_author));
        $archive = get_post_type_archive_link($post->post_type);
        if ($archive) {
            self::add($archive);
        }
        foreach (get_object_taxonomies($post->post_type) as $taxonomy) {
            $terms = get_the_terms($post, $taxonomy);
            if (is_array($terms)) {
                foreach ($terms as $term) {
                    $link = get_term_link($term);
                    if (!is_wp_error($link)) {
                        self::add($link);
                    }
                }
            }
        }
        $time = strtotime($post->post_date);
        if ($time) {
            self::add(get_year_link((int) date('Y', $time)));
            self::add(get_month_link((int) date('Y', $time), (int) date('m', $time)));
            self::add(get_day_link((int) date('Y', $time), (int) date('m', $time), (int) date('d', $time)));
        }
    }

    /** Site-wide changes (theme, menus, widgets, customizer): every page. */
    public static function everything()
    {
        self::$prefixes[home_url('/')] = true;
    }

    public static function transition($new_status, $old_status, $post)
    {
        if ($new_status === 'publish' || $old_status === 'publish') {
            self::post($post->ID);
        }
    }

    public static function comment($comment_id)
    {
        $comment = get_comment($comment_id);
        if ($comment && $comment->comment_approved === '1') {
            self::post((int) $comment->comment_post_ID);
        }
    }

    public static function comment_status($new_status, $old_status, $comment)
    {
        if ($new_status === 'approved' || $old_status === 'approved') {
            self::post((int) $comment->comment_post_ID);
        }
    }

    /** Sends the queued purges in one request. Failures are logged, never fatal. */
    public static function flush()
    {
        $endpoint = self::endpoint();
        if ($endpoint === null || (!self::$urls && !self::$prefixes)) {
            return;
        }
        $query = [];
        foreach (array_keys(self::$urls) as $url) {
            $query[] = 'url=' . rawurlencode($url);
        }
        foreach (array_keys(self::$prefixes) as $prefix) {
            $query[] = 'prefix=' . rawurlencode($prefix);
        }
        self::$urls = [];
        self::$prefixes = [];
        $headers = "Content-Length: 0\r\n";
        $token = self::token();
        if ($token !== null && $token !== '') {
            $headers .= "Authorization: Bearer {$token}\r\n";
        }
        $context = stream_context_create(['http' => [
            'method' => 'POST',
            'header' => $headers,
            'timeout' => 3,
            'ignore_errors' => true,
        ]]);
        $separator = strpos($endpoint, '?') === false ? '?' : '&';
        $result = @file_get_contents($endpoint . $separator . implode('&', $query), false, $context);
        if ($result === false) {
            error_log('murakumo-purge: could not reach ' . $endpoint);
        }
    }
}

if (Murakumo_Purge::endpoint() !== null) {
    add_action('transition_post_status', ['Murakumo_Purge', 'transition'], 10, 3);
    add_action('before_delete_post', ['Murakumo_Purge', 'post'], 10, 1);
    add_action('comment_post', ['Murakumo_Purge', 'comment'], 10, 1);
    add_action('transition_comment_status', ['Murakumo_Purge', 'comment_status'], 10, 3);
    foreach (['switch_theme', 'customize_save_after', 'wp_update_nav_menu', 'update_option_sidebars_widgets',
              'activated_plugin', 'deactivated_plugin', 'update_option_blogname', 'update_option_blogdescription',
              'update_option_permalink_structure'] as $hook) {
        add_action($hook, ['Murakumo_Purge', 'everything'], 10, 0);
    }
    add_action('shutdown', ['Murakumo_Purge', 'flush'], 100);
}
