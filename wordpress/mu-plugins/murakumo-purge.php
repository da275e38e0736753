<?php
/**
 * Plugin Name: murakumo purge
 * Description: Labels every page with what it shows (cache tags) and purges from murakumo's page cache exactly the pages that show what changed; site-wide changes (templates, global styles, menus, widgets, customizer, theme, plugins, site options) purge the site.
 * Version: 0.2.0
 *
 * Configuration comes from the environment (php-fpm `env[...]`, container env):
 *   MURAKUMO_PURGE_URL         e.g. http://127.0.0.1:9090/purge (unset: the plugin only labels pages)
 *   MURAKUMO_PURGE_TOKEN       bearer token, or
 *   MURAKUMO_PURGE_TOKEN_FILE  a file holding it (preferred: not visible in the process environment)
 *
 * Tags (docs/cache.md has the whole scheme), sent in the X-Murakumo-Tags
 * response header, which the edge keeps with the cached page and removes
 * before any client sees it:
 *   p:ID     the page shows post ID (its title, a link to it, it in a loop)
 *   q:TYPE   the page lists posts of TYPE (a loop a new post may enter, a page list,
 *            an archives or calendar widget); q:any
 *   q:terms  the page lists terms (categories, tag cloud)
 *   q:comments  the page lists comments of any post (recent comments)
 *   t:ID     the page shows term ID (its archive, a link to it)
 *   a:ID     the page shows author ID (their archive, a link to them, their name)
 *   404      the page is a "not found" page
 *
 * Purges are collected during the request and sent in one POST at shutdown,
 * so saving a post costs one small request to the edge, whatever changed.
 */

if (!defined('ABSPATH')) {
    exit;
}

final class Murakumo_Purge
{
    const HEADER = 'X-Murakumo-Tags';
    /** More tags than this: the page goes out unlabelled (the edge then purges it with any change). */
    const MAX_TAGS = 1000;
    /** Post types whose change can show on every page. */
    const SITE_WIDE_TYPES = ['wp_template', 'wp_template_part', 'wp_global_styles', 'wp_navigation', 'wp_block',
                             'nav_menu_item', 'custom_css', 'customize_changeset'];
    /** Post types that never show as content. */
    const IGNORED_TYPES = ['revision', 'oembed_cache', 'user_request', 'wp_font_face', 'wp_font_family'];
    /** Options whose change shows on every page. */
    const SITE_WIDE_OPTIONS = ['blogname', 'blogdescription', 'permalink_structure', 'category_base', 'tag_base',
                               'show_on_front', 'page_on_front', 'page_for_posts', 'posts_per_page', 'date_format',
                               'time_format', 'start_of_week', 'timezone_string', 'gmt_offset', 'WPLANG', 'site_icon',
                               'home', 'siteurl', 'sidebars_widgets', 'stylesheet', 'template', 'show_avatars',
                               'comment_registration', 'thread_comments', 'page_comments', 'comments_per_page',
                               'default_comments_page', 'comment_order', 'blog_public', 'rss_use_excerpt',
                               'site_logo', 'close_comments_for_old_posts', 'close_comments_days_old',
                               'require_name_email', 'show_comments_cookies_opt_in', 'thread_comments_depth',
                               'avatar_default', 'avatar_rating', 'use_smilies', 'default_comment_status'];

    /** @var array<string,bool> tags of the page being rendered */
    private static $labels = [];
    /** @var array<string,bool> */
    private static $tags = [];
    /** @var array<string,bool> */
    private static $urls = [];
    /** @var bool */
    private static $everything = false;
    /** @var array<string,bool> */
    private static $reasons = [];

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

    // ---- Labelling: what the page being rendered shows ----

    private static function label($tag)
    {
        self::$labels[$tag] = true;
    }

    private static function label_post($post)
    {
        $id = is_object($post) ? (int) $post->ID : (int) $post;
        if ($id > 0) {
            self::label('p:' . $id);
        }
    }

    /**
     * Front-end pages are buffered whole, so the label can be sent after
     * everything rendered. Output beyond 4 MiB (a download streamed by a
     * plugin) is flushed as it comes: that response goes out unlabelled.
     */
    public static function start_page()
    {
        ob_start(null, 4 << 20);
    }

    /** Sends the label (shutdown, before WordPress flushes the page). */
    public static function send_label()
    {
        if (!did_action('template_redirect') || headers_sent()) {
            return;
        }
        if (is_404()) {
            self::label('404');
        }
        $object = get_queried_object();
        if ($object instanceof WP_Term) {
            self::label('t:' . $object->term_id);
        } elseif ($object instanceof WP_User) {
            self::label('a:' . $object->ID);
        } elseif ($object instanceof WP_Post) {
            self::label_post($object);
        }
        if (self::$labels && count(self::$labels) <= self::MAX_TAGS) {
            header(self::HEADER . ': ' . implode(' ', array_keys(self::$labels)));
        }
    }

    public static function the_posts($posts)
    {
        if (is_array($posts)) {
            foreach ($posts as $post) {
                if ($post instanceof WP_Post && !in_array($post->post_type, self::SITE_WIDE_TYPES, true)) {
                    self::label_post($post);
                }
            }
        }
        return $posts;
    }

    /** A query that lists posts (not one post, not fixed IDs): a new or removed post changes it. */
    public static function pre_get_posts($query)
    {
        if ($query->is_singular() || $query->get('post__in') || $query->get('p') || $query->get('name')) {
            return;
        }
        $types = $query->get('post_type');
        if ($types === '' || $types === null || $types === []) {
            $types = $query->is_attachment() ? ['attachment'] : ['post'];
        }
        foreach ((array) $types as $type) {
            if ($type === 'any') {
                self::label('q:any');
            } elseif (is_string($type) && !in_array($type, self::SITE_WIDE_TYPES, true) && !in_array($type, self::IGNORED_TYPES, true)) {
                self::label('q:' . $type);
            }
        }
    }

    /** Page lists (get_pages(): navigation fallbacks, wp_list_pages) list every page. */
    public static function get_pages($pages)
    {
        self::label('q:page');
        return self::the_posts($pages);
    }

    /** Listings WordPress builds with its own SQL: archives and calendar widgets. */
    public static function lists_posts($value)
    {
        self::label('q:post');
        return $value;
    }

    /** Term lists (a category list, a tag cloud); not the terms of given posts (`p:ID`, `t:ID`). */
    public static function get_terms($terms, $taxonomies = null, $args = [])
    {
        if (empty($args['object_ids'])) {
            self::label('q:terms');
        }
        return $terms;
    }

    /** Comment lists not tied to one post (a post's own comments are `p:ID`). */
    public static function pre_get_comments($query)
    {
        $vars = $query->query_vars;
        if (empty($vars['post_id']) && empty($vars['post__in']) && empty($vars['post_ID'])) {
            self::label('q:comments');
        }
    }

    public static function the_title($title, $id = 0)
    {
        self::label_post($id);
        return $title;
    }

    public static function post_link($link, $post = 0)
    {
        self::label_post($post);
        return $link;
    }

    public static function term_link($link, $term = null)
    {
        if (is_object($term) && isset($term->term_id)) {
            self::label('t:' . (int) $term->term_id);
        }
        return $link;
    }

    public static function author_link($link, $author_id = 0)
    {
        if ((int) $author_id > 0) {
            self::label('a:' . (int) $author_id);
        }
        return $link;
    }

    /** An author's name or other field shown (`get_the_author_{field}`). */
    public static function author_field($value, $user_id = 0)
    {
        if ((int) $user_id > 0) {
            self::label('a:' . (int) $user_id);
        }
        return $value;
    }

    /** `the_author` (the loop's author, from `$authordata`). */
    public static function the_author($name)
    {
        global $authordata;
        if (is_object($authordata) && isset($authordata->ID)) {
            self::label('a:' . (int) $authordata->ID);
        }
        return $name;
    }

    /** An image of the media library on the page (featured, content, gallery). */
    public static function attachment_image($value, $attachment = null)
    {
        self::label_post($attachment);
        return $value;
    }

    /** `wp_content_img_tag`: ($filtered_image, $context, $attachment_id). */
    public static function content_image($image, $context = '', $attachment_id = 0)
    {
        self::label_post($attachment_id);
        return $image;
    }

    // ---- Purging: what a change removes ----

    private static function purge_tag($tag, $reason)
    {
        self::$tags[$tag] = true;
        self::$reasons[$reason] = true;
    }

    private static function purge_url($url)
    {
        if (is_string($url) && $url !== '') {
            self::$urls[$url] = true;
        }
    }

    /** Site-wide changes (templates, styles, menus, widgets, customizer, theme, plugins, options): every page. */
    public static function everything($reason = 'site-wide change')
    {
        self::$everything = true;
        self::$reasons[is_string($reason) && $reason !== '' ? $reason : 'site-wide change'] = true;
    }

    /** @return WP_Post|null a post whose pages the cache may hold */
    private static function content_post($post)
    {
        $post = get_post($post);
        if (!$post || wp_is_post_revision($post) || wp_is_post_autosave($post)) {
            return null;
        }
        if (in_array($post->post_type, self::IGNORED_TYPES, true)) {
            return null;
        }
        return $post;
    }

    private static function is_site_wide($post)
    {
        return in_array($post->post_type, self::SITE_WIDE_TYPES, true);
    }

    /** The post's own pages and every page that shows it; with $listed, every listing it enters or leaves. */
    private static function post_changed($post, $listed, $why)
    {
        $reason = "post {$post->ID} {$why}";
        self::purge_tag('p:' . $post->ID, $reason);
        if ($listed) {
            self::purge_tag('q:' . $post->post_type, $reason);
            self::purge_tag('q:any', $reason);
            self::purge_tag('q:terms', $reason);
            // A "not found" page may now be this post's URL.
            self::purge_tag('404', $reason);
            self::purge_url(get_permalink($post));
        }
    }

    public static function transition($new_status, $old_status, $post)
    {
        $post = self::content_post($post);
        if (!$post) {
            return;
        }
        if (self::is_site_wide($post)) {
            if ($new_status === 'publish' || $old_status === 'publish') {
                self::everything("{$post->post_type} {$post->ID} saved");
            }
            return;
        }
        if ($new_status !== 'publish' && $old_status !== 'publish') {
            return;
        }
        $why = $new_status === $old_status ? 'updated' : "{$old_status} to {$new_status}";
        self::post_changed($post, $new_status !== $old_status, $why);
    }

    /** An update that moves a published post in listings (date, author, order, parent). */
    public static function updated($post_id, $after, $before)
    {
        $post = self::content_post($after);
        if (!$post || self::is_site_wide($post) || $after->post_status !== 'publish' || $before->post_status !== 'publish') {
            return;
        }
        foreach (['post_date', 'post_author', 'menu_order', 'post_parent', 'post_name'] as $field) {
            if ($after->$field != $before->$field) {
                self::post_changed($post, true, "{$field} changed");
                return;
            }
        }
    }

    /** A published post's terms changed: it enters or leaves term listings. */
    public static function terms_set($object_id, $terms, $tt_ids, $taxonomy, $append, $old_tt_ids)
    {
        $post = self::content_post($object_id);
        if (!$post || self::is_site_wide($post) || $post->post_status !== 'publish') {
            return;
        }
        $new = array_map('intval', (array) $tt_ids);
        $old = array_map('intval', (array) $old_tt_ids);
        sort($new);
        sort($old);
        if ($new !== $old) {
            self::post_changed($post, true, "{$taxonomy} changed");
        }
    }

    public static function deleted($post_id)
    {
        $post = self::content_post($post_id);
        if (!$post) {
            return;
        }
        if (self::is_site_wide($post)) {
            self::everything("{$post->post_type} {$post->ID} deleted");
        } elseif ($post->post_status === 'publish') {
            self::post_changed($post, true, 'deleted');
        }
    }

    public static function comment($comment_id)
    {
        $comment = get_comment($comment_id);
        if ($comment && $comment->comment_approved === '1') {
            $reason = "comment {$comment_id} on post {$comment->comment_post_ID}";
            self::purge_tag('p:' . (int) $comment->comment_post_ID, $reason);
            self::purge_tag('q:comments', $reason);
        }
    }

    public static function comment_status($new_status, $old_status, $comment)
    {
        if ($new_status === 'approved' || $old_status === 'approved') {
            $reason = "comment {$comment->comment_ID} {$new_status}";
            self::purge_tag('p:' . (int) $comment->comment_post_ID, $reason);
            self::purge_tag('q:comments', $reason);
        }
    }

    public static function term($term_id, $tt_id = 0, $taxonomy = '')
    {
        self::purge_tag('t:' . (int) $term_id, "term {$term_id} changed");
        self::purge_tag('q:terms', "term {$term_id} changed");
    }

    public static function term_deleted($term_id, $tt_id = 0, $taxonomy = '')
    {
        self::purge_tag('t:' . (int) $term_id, "term {$term_id} deleted");
        self::purge_tag('q:terms', "term {$term_id} deleted");
        self::purge_tag('q:any', "term {$term_id} deleted");
    }

    public static function user($user_id)
    {
        self::purge_tag('a:' . (int) $user_id, "author {$user_id} changed");
    }

    /** A deleted user's posts are deleted or given to another: every page may change. */
    public static function user_deleted($user_id)
    {
        self::everything("user {$user_id} deleted");
    }

    /** A media item edited, replaced or deleted: the pages that show it. */
    public static function attachment($attachment_id)
    {
        $attachment_id = (int) (is_object($attachment_id) ? $attachment_id->ID : $attachment_id);
        if ($attachment_id > 0) {
            self::purge_tag('p:' . $attachment_id, "media {$attachment_id} changed");
        }
    }

    /** Alt text and sizes are attachment meta, saved without a post update. */
    public static function attachment_meta($meta_id, $object_id, $meta_key)
    {
        if ($meta_key === '_wp_attachment_image_alt' || $meta_key === '_wp_attachment_metadata' || $meta_key === '_wp_attached_file') {
            self::attachment($object_id);
        }
    }

    /**
     * Theme mods without the keys WordPress writes as a lookup cache while
     * rendering (`custom_css_post_id`, on a site's first page view): a
     * change of those alone shows nowhere.
     */
    private static function shown_theme_mods($mods)
    {
        if (!is_array($mods)) {
            return $mods;
        }
        unset($mods['custom_css_post_id']);
        return $mods;
    }

    /**
     * Options WordPress adds empty while rendering a site's first pages
     * (each widget type's settings, the theme mods' lookup cache): nothing
     * shows them yet, and purging for them would throw away those pages.
     */
    public static function option_added($option, $value = null)
    {
        if (strpos($option, 'theme_mods_') === 0 && !self::shown_theme_mods($value)) {
            return;
        }
        if (strpos($option, 'widget_') === 0 && is_array($value) && !array_diff_key($value, ['_multiwidget' => true])) {
            return;
        }
        self::option($option);
    }

    public static function option_updated($option, $old = null, $new = null)
    {
        if (strpos($option, 'theme_mods_') === 0 && self::shown_theme_mods($old) == self::shown_theme_mods($new)) {
            return;
        }
        self::option($option);
    }

    private static function option($option)
    {
        if ($option === 'sticky_posts') {
            self::purge_tag('q:post', 'sticky posts changed');
        } elseif (in_array($option, self::SITE_WIDE_OPTIONS, true) || strpos($option, 'theme_mods_') === 0 || strpos($option, 'widget_') === 0) {
            self::everything("option {$option} changed");
        }
    }

    /** Sends the queued purges in one request. Failures are logged, never fatal. */
    public static function flush()
    {
        $endpoint = self::endpoint();
        if ($endpoint === null || (!self::$tags && !self::$urls && !self::$everything)) {
            return;
        }
        $query = [];
        $host = wp_parse_url(home_url('/'), PHP_URL_HOST);
        if (self::$everything) {
            // Every page of the site, whatever its tags.
            $query[] = 'prefix=' . rawurlencode(home_url('/'));
        } else {
            foreach (array_keys(self::$urls) as $url) {
                $query[] = 'url=' . rawurlencode($url);
            }
            foreach (array_keys(self::$tags) as $tag) {
                $query[] = 'tag=' . rawurlencode($tag);
            }
            if (is_string($host) && $host !== '') {
                $query[] = 'host=' . rawurlencode($host);
            }
        }
        $query[] = 'reason=' . rawurlencode(implode('; ', array_slice(array_keys(self::$reasons), 0, 10)));
        self::$tags = [];
        self::$urls = [];
        self::$everything = false;
        self::$reasons = [];
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

// Labels: on every request (cheap), sent only with front-end pages.
add_action('template_redirect', ['Murakumo_Purge', 'start_page'], PHP_INT_MIN);
add_action('shutdown', ['Murakumo_Purge', 'send_label'], 0);
add_filter('the_posts', ['Murakumo_Purge', 'the_posts'], 10, 1);
add_action('pre_get_posts', ['Murakumo_Purge', 'pre_get_posts'], PHP_INT_MAX, 1);
add_filter('the_title', ['Murakumo_Purge', 'the_title'], 10, 2);
foreach (['post_link', 'page_link', 'post_type_link', 'attachment_link'] as $filter) {
    add_filter($filter, ['Murakumo_Purge', 'post_link'], 10, 2);
}
add_filter('get_pages', ['Murakumo_Purge', 'get_pages'], 10, 1);
add_filter('getarchives_where', ['Murakumo_Purge', 'lists_posts'], 10, 1);
add_filter('get_calendar', ['Murakumo_Purge', 'lists_posts'], 10, 1);
add_filter('get_terms', ['Murakumo_Purge', 'get_terms'], 10, 3);
add_action('pre_get_comments', ['Murakumo_Purge', 'pre_get_comments'], 10, 1);
add_filter('term_link', ['Murakumo_Purge', 'term_link'], 10, 2);
add_filter('author_link', ['Murakumo_Purge', 'author_link'], 10, 2);
foreach (['display_name', 'nickname', 'first_name', 'last_name', 'description', 'user_url', 'user_nicename'] as $field) {
    add_filter("get_the_author_{$field}", ['Murakumo_Purge', 'author_field'], 10, 2);
}
add_filter('the_author', ['Murakumo_Purge', 'the_author'], 10, 1);
add_filter('wp_get_attachment_image_attributes', ['Murakumo_Purge', 'attachment_image'], 10, 2);
add_filter('wp_content_img_tag', ['Murakumo_Purge', 'content_image'], 10, 3);

if (Murakumo_Purge::endpoint() !== null) {
    add_action('transition_post_status', ['Murakumo_Purge', 'transition'], 10, 3);
    add_action('post_updated', ['Murakumo_Purge', 'updated'], 10, 3);
    add_action('set_object_terms', ['Murakumo_Purge', 'terms_set'], 10, 6);
    add_action('before_delete_post', ['Murakumo_Purge', 'deleted'], 10, 1);
    add_action('comment_post', ['Murakumo_Purge', 'comment'], 10, 1);
    add_action('edit_comment', ['Murakumo_Purge', 'comment'], 10, 1);
    add_action('transition_comment_status', ['Murakumo_Purge', 'comment_status'], 10, 3);
    add_action('edited_term', ['Murakumo_Purge', 'term'], 10, 3);
    add_action('created_term', ['Murakumo_Purge', 'term'], 10, 3);
    add_action('delete_term', ['Murakumo_Purge', 'term_deleted'], 10, 3);
    add_action('profile_update', ['Murakumo_Purge', 'user'], 10, 1);
    add_action('deleted_user', ['Murakumo_Purge', 'user_deleted'], 10, 1);
    foreach (['edit_attachment', 'delete_attachment'] as $hook) {
        add_action($hook, ['Murakumo_Purge', 'attachment'], 10, 1);
    }
    foreach (['added_post_meta', 'updated_post_meta', 'deleted_post_meta'] as $hook) {
        add_action($hook, ['Murakumo_Purge', 'attachment_meta'], 10, 3);
    }
    add_action('updated_option', ['Murakumo_Purge', 'option_updated'], 10, 3);
    add_action('added_option', ['Murakumo_Purge', 'option_added'], 10, 2);
    foreach (['switch_theme', 'customize_save_after', 'wp_update_nav_menu', 'wp_delete_nav_menu',
              'activated_plugin', 'deactivated_plugin', 'upgrader_process_complete'] as $hook) {
        add_action($hook, ['Murakumo_Purge', 'everything'], 10, 0);
    }
    add_action('shutdown', ['Murakumo_Purge', 'flush'], 100);
}
