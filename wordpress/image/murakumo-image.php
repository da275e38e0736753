<?php
/**
 * Plugin Name: murakumo image
 * Description: The runtime image's default theme, baked in and read-only, as a second theme directory: a new, empty wp-content volume still has a working theme, and starting a container never writes into wp-content.
 * Version: 0.1.0
 */

if (!defined('ABSPATH')) {
    exit;
}

register_theme_directory(ABSPATH . 'murakumo-themes');
