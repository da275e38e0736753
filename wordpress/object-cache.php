<?php
/**
 * Plugin Name: murakumo object cache
 * Description: WordPress's object cache on Redis (php-redis), installed by murakumo as wp-content/object-cache.php.
 * Version: 1.0
 *
 * Configured by constants in wp-config.php (`murakumo up --redis` and the
 * image write them):
 *
 *   MURAKUMO_REDIS                "unix:/path/redis.sock" or "tcp://HOST:6379"
 *   MURAKUMO_REDIS_PASSWORD       the password (optional; `up` passes it in the
 *                                 pools' environment)
 *   MURAKUMO_REDIS_PASSWORD_FILE  or a file holding it (optional)
 *   MURAKUMO_REDIS_DB             the database number (default 0)
 *   MURAKUMO_CACHE_PREFIX         this site's key prefix (default: from
 *                                 DB_NAME, $table_prefix and WP_CACHE_KEY_SALT)
 *
 * Several sites may share one Redis: every key starts with the site's
 * prefix and its flush generation, so wp_cache_flush() of one site (a new
 * generation; Redis evicts the old keys) leaves the others alone.
 *
 * Redis unreachable or failing: the cache keeps working for the request
 * (in memory, as WordPress does without a drop-in), logs once, and never
 * turns a page into an error. A request that starts without Redis tells
 * WordPress so (`wp_using_ext_object_cache(false)`: transients go to the
 * database, Site Health says no persistent cache is used). A request that
 * changed the cache while Redis did not take it (a hang, a restart) leaves
 * a mark in PHP's temporary directory, and the next request that reaches
 * Redis flushes the site's cache first: Redis may still hold what that
 * change replaced, with no expiry.
 */

defined( 'ABSPATH' ) || exit;

class Murakumo_Object_Cache {
	/** @var array<string, array<string, mixed>> What this request has read or written, by group. */
	private $cache = array();
	/** @var array<string, array<string, true>> Keys known not to be in Redis, by group. */
	private $absent = array();
	private $global_groups = array();
	private $non_persistent_groups = array();
	private $blog_prefix = '1';
	private $multisite = false;
	/** @var Redis|null */
	private $redis = null;
	private $prefix = '';
	private $generation = '1';
	/** Whether a change to a persistent group did not reach Redis. */
	private $lost_writes = false;

	/** Lookups answered from memory or Redis, and not at all (WordPress's counters). */
	public $cache_hits = 0;
	public $cache_misses = 0;
	/** Of the hits, those Redis answered; and the calls made to Redis. */
	public $redis_hits = 0;
	public $redis_calls = 0;
	private $connected_at_start = false;

	public function __construct() {
		$this->multisite   = is_multisite();
		$this->blog_prefix = $this->multisite ? (string) get_current_blog_id() : '1';
		$this->prefix      = defined( 'MURAKUMO_CACHE_PREFIX' ) ? MURAKUMO_CACHE_PREFIX : self::default_prefix();
		$this->connect();
		if ( null !== $this->redis && file_exists( $this->lost_mark() ) ) {
			// An earlier request changed the cache without Redis.
			if ( $this->flush() ) {
				@unlink( $this->lost_mark() );
				error_log( 'murakumo object cache: flushed this site\'s cache; an earlier request changed it while Redis did not answer' );
			}
		}
		register_shutdown_function( array( $this, 'mark_lost_writes' ) );
	}

	/** Where a request that lost writes leaves its mark (PHP's temporary directory). */
	private function lost_mark() {
		$redis = defined( 'MURAKUMO_REDIS' ) ? MURAKUMO_REDIS : '';
		return rtrim( sys_get_temp_dir(), '/' ) . '/murakumo-object-cache-' . md5( $this->prefix . '|' . $redis ) . '.lost';
	}

	/** At shutdown: marks the site's cache for a flush if a change did not reach Redis. */
	public function mark_lost_writes() {
		if ( $this->lost_writes && defined( 'MURAKUMO_REDIS' ) ) {
			@touch( $this->lost_mark() );
		}
	}

	/** Whether this request reached Redis when it started. */
	public function was_connected_at_start() {
		return $this->connected_at_start;
	}

	private static function default_prefix() {
		global $table_prefix;
		$salt = defined( 'WP_CACHE_KEY_SALT' ) ? WP_CACHE_KEY_SALT : '';
		$db   = defined( 'DB_NAME' ) ? DB_NAME : '';
		return 'wp:' . substr( sha1( $db . '|' . $table_prefix . '|' . $salt ), 0, 12 );
	}

	private function connect() {
		if ( ! defined( 'MURAKUMO_REDIS' ) || ! class_exists( 'Redis' ) ) {
			return;
		}
		try {
			$redis   = new Redis();
			$address = MURAKUMO_REDIS;
			if ( 0 === strpos( $address, 'unix:' ) ) {
				$ok = $redis->connect( substr( $address, 5 ), 0, 0.5 );
			} else {
				$hostport = preg_replace( '#^tcp://#', '', $address );
				$colon    = strrpos( $hostport, ':' );
				$host     = false === $colon ? $hostport : substr( $hostport, 0, $colon );
				$port     = false === $colon ? 6379 : (int) substr( $hostport, $colon + 1 );
				$ok       = $redis->connect( $host, $port, 0.5 );
			}
			if ( ! $ok ) {
				throw new RedisException( 'cannot connect' );
			}
			$redis->setOption( Redis::OPT_READ_TIMEOUT, 0.5 );
			if ( defined( 'MURAKUMO_REDIS_PASSWORD' ) && '' !== MURAKUMO_REDIS_PASSWORD ) {
				$redis->auth( MURAKUMO_REDIS_PASSWORD );
			} elseif ( defined( 'MURAKUMO_REDIS_PASSWORD_FILE' ) ) {
				$password = @file_get_contents( MURAKUMO_REDIS_PASSWORD_FILE );
				if ( false === $password ) {
					throw new RedisException( 'cannot read ' . MURAKUMO_REDIS_PASSWORD_FILE );
				}
				$redis->auth( rtrim( $password, "\r\n" ) );
			}
			if ( defined( 'MURAKUMO_REDIS_DB' ) ) {
				$redis->select( (int) MURAKUMO_REDIS_DB );
			}
			$this->redis = $redis;
			$generation  = $this->call( 'get', $this->prefix . ':generation' );
			if ( false === $generation && null !== $this->redis ) {
				$this->call( 'set', $this->prefix . ':generation', '1', array( 'nx' ) );
				$generation = $this->call( 'get', $this->prefix . ':generation' );
			}
			$this->generation = false === $generation ? '1' : (string) $generation;
			$this->connected_at_start = null !== $this->redis;
		} catch ( Exception $e ) {
			$this->fail( $e, false );
		}
	}

	/** A Redis call; on failure the rest of the request goes on without Redis. */
	private function call( $method, ...$args ) {
		if ( null === $this->redis ) {
			return false;
		}
		try {
			++$this->redis_calls;
			return $this->redis->$method( ...$args );
		} catch ( Exception $e ) {
			$this->fail( $e, in_array( $method, array( 'set', 'del', 'incr' ), true ) );
			return false;
		}
	}

	/** Redis failed; `$write`: while taking a change (which it may not have). */
	private function fail( $e, $write = true ) {
		$this->redis = null;
		if ( $write ) {
			$this->lost_writes = true;
		}
		error_log( 'murakumo object cache: Redis unavailable (' . $e->getMessage() . '); this request caches in memory only' );
	}

	/** Whether a group's keys live in Redis. */
	private function persistent( $group ) {
		return null !== $this->redis && ! isset( $this->non_persistent_groups[ $group ] );
	}

	/**
	 * Notes a change to `$group` made while Redis is not reachable: Redis
	 * may keep what it replaced (see the file's comment).
	 */
	private function changed( $group ) {
		if ( null === $this->redis && ! isset( $this->non_persistent_groups[ $group ] ) ) {
			$this->lost_writes = true;
		}
	}

	private function redis_key( $key, $group ) {
		$scope = isset( $this->global_groups[ $group ] ) ? 'g' : $this->blog_prefix;
		return $this->prefix . ':' . $this->generation . ':' . $scope . ':' . $group . ':' . $key;
	}

	/** WordPress's own rule for keys: an int or a non-empty string. */
	private static function valid_key( $key ) {
		if ( is_int( $key ) ) {
			return true;
		}
		if ( is_string( $key ) && '' !== trim( $key ) ) {
			return true;
		}
		$type = gettype( $key );
		if ( function_exists( '_doing_it_wrong' ) ) {
			_doing_it_wrong( 'wp_cache_*', sprintf( 'Cache key must be an integer or a non-empty string, %s given.', $type ), '6.1.0' );
		}
		return false;
	}

	private static function group( $group ) {
		return ( '' === $group || null === $group ) ? 'default' : (string) $group;
	}

	private static function copy( $value ) {
		return is_object( $value ) ? clone $value : $value;
	}

	private function remember( $key, $value, $group ) {
		$this->cache[ $group ][ $key ] = self::copy( $value );
		unset( $this->absent[ $group ][ $key ] );
	}

	private function in_memory( $key, $group ) {
		return isset( $this->cache[ $group ] ) && array_key_exists( $key, $this->cache[ $group ] );
	}

	private static function ttl( $expire ) {
		$expire = (int) $expire;
		return $expire > 0 ? $expire : 0;
	}

	private function store( $key, $value, $group, $expire, $mode = null ) {
		$options = array();
		if ( $mode ) {
			$options[] = $mode;
		}
		$ttl = self::ttl( $expire );
		if ( $ttl ) {
			$options['ex'] = $ttl;
		}
		return $this->call( 'set', $this->redis_key( $key, $group ), serialize( $value ), $options );
	}

	public function add( $key, $data, $group = 'default', $expire = 0 ) {
		if ( wp_suspend_cache_addition() || ! self::valid_key( $key ) ) {
			return false;
		}
		$group = self::group( $group );
		$this->changed( $group );
		if ( $this->in_memory( $key, $group ) ) {
			return false;
		}
		if ( $this->persistent( $group ) && ! $this->store( $key, $data, $group, $expire, 'nx' ) ) {
			// Another request has it (or Redis failed, then memory decides).
			if ( null !== $this->redis ) {
				return false;
			}
		}
		$this->remember( $key, $data, $group );
		return true;
	}

	public function add_multiple( array $data, $group = '', $expire = 0 ) {
		$values = array();
		foreach ( $data as $key => $value ) {
			$values[ $key ] = $this->add( $key, $value, $group, $expire );
		}
		return $values;
	}

	public function replace( $key, $data, $group = 'default', $expire = 0 ) {
		if ( ! self::valid_key( $key ) ) {
			return false;
		}
		$group = self::group( $group );
		$this->changed( $group );
		if ( $this->persistent( $group ) ) {
			if ( ! $this->store( $key, $data, $group, $expire, 'xx' ) ) {
				return false;
			}
		} elseif ( ! $this->in_memory( $key, $group ) ) {
			return false;
		}
		$this->remember( $key, $data, $group );
		return true;
	}

	public function set( $key, $data, $group = 'default', $expire = 0 ) {
		if ( ! self::valid_key( $key ) ) {
			return false;
		}
		$group = self::group( $group );
		$this->changed( $group );
		if ( $this->persistent( $group ) ) {
			$this->store( $key, $data, $group, $expire );
		}
		$this->remember( $key, $data, $group );
		return true;
	}

	public function set_multiple( array $data, $group = '', $expire = 0 ) {
		$group  = self::group( $group );
		$this->changed( $group );
		$values = array();
		$keys   = array();
		foreach ( $data as $key => $value ) {
			$values[ $key ] = self::valid_key( $key );
			if ( $values[ $key ] ) {
				$keys[ $key ] = $value;
				$this->remember( $key, $value, $group );
			}
		}
		if ( $keys && $this->persistent( $group ) ) {
			try {
				++$this->redis_calls;
				$pipe = $this->redis->multi( Redis::PIPELINE );
				$ttl  = self::ttl( $expire );
				foreach ( $keys as $key => $value ) {
					$pipe->set( $this->redis_key( $key, $group ), serialize( $value ), $ttl ? array( 'ex' => $ttl ) : array() );
				}
				$pipe->exec();
			} catch ( Exception $e ) {
				$this->fail( $e );
			}
		}
		return $values;
	}

	public function get( $key, $group = 'default', $force = false, &$found = null ) {
		$found = false;
		if ( ! self::valid_key( $key ) ) {
			return false;
		}
		$group = self::group( $group );
		if ( $this->in_memory( $key, $group ) && ! ( $force && $this->persistent( $group ) ) ) {
			$found = true;
			++$this->cache_hits;
			return self::copy( $this->cache[ $group ][ $key ] );
		}
		if ( ! $this->persistent( $group ) || ( isset( $this->absent[ $group ][ $key ] ) && ! $force ) ) {
			++$this->cache_misses;
			return false;
		}
		$raw = $this->call( 'get', $this->redis_key( $key, $group ) );
		if ( false === $raw ) {
			$this->absent[ $group ][ $key ] = true;
			++$this->cache_misses;
			return false;
		}
		$value = unserialize( $raw );
		$found = true;
		++$this->cache_hits;
		++$this->redis_hits;
		$this->remember( $key, $value, $group );
		return self::copy( $value );
	}

	public function get_multiple( $keys, $group = 'default', $force = false ) {
		$group  = self::group( $group );
		$values = array();
		$ask    = array();
		foreach ( $keys as $key ) {
			if ( ! self::valid_key( $key ) ) {
				$values[ $key ] = false;
			} elseif ( $this->in_memory( $key, $group ) && ! ( $force && $this->persistent( $group ) ) ) {
				++$this->cache_hits;
				$values[ $key ] = self::copy( $this->cache[ $group ][ $key ] );
			} elseif ( $this->persistent( $group ) && ( $force || ! isset( $this->absent[ $group ][ $key ] ) ) ) {
				$ask[] = $key;
				$values[ $key ] = false;
			} else {
				++$this->cache_misses;
				$values[ $key ] = false;
			}
		}
		if ( $ask ) {
			$redis_keys = array();
			foreach ( $ask as $key ) {
				$redis_keys[] = $this->redis_key( $key, $group );
			}
			$raw = $this->call( 'mget', $redis_keys );
			foreach ( $ask as $i => $key ) {
				if ( is_array( $raw ) && isset( $raw[ $i ] ) && false !== $raw[ $i ] ) {
					$value = unserialize( $raw[ $i ] );
					++$this->cache_hits;
					++$this->redis_hits;
					$this->remember( $key, $value, $group );
					$values[ $key ] = self::copy( $value );
				} else {
					++$this->cache_misses;
					$this->absent[ $group ][ $key ] = true;
				}
			}
		}
		return $values;
	}

	public function delete( $key, $group = 'default' ) {
		if ( ! self::valid_key( $key ) ) {
			return false;
		}
		$group = self::group( $group );
		$this->changed( $group );
		$had   = $this->in_memory( $key, $group );
		unset( $this->cache[ $group ][ $key ] );
		if ( $this->persistent( $group ) ) {
			$this->absent[ $group ][ $key ] = true;
			return (bool) $this->call( 'del', $this->redis_key( $key, $group ) ) || $had;
		}
		return $had;
	}

	public function delete_multiple( array $keys, $group = '' ) {
		$values = array();
		foreach ( $keys as $key ) {
			$values[ $key ] = $this->delete( $key, $group );
		}
		return $values;
	}

	private function offset( $key, $offset, $group, $sign ) {
		$group = self::group( $group );
		$found = false;
		$value = $this->get( $key, $group, false, $found );
		if ( ! $found ) {
			return false;
		}
		$value = is_numeric( $value ) ? (int) $value : 0;
		$value = max( 0, $value + $sign * (int) $offset );
		$this->set( $key, $value, $group );
		return $value;
	}

	public function incr( $key, $offset = 1, $group = 'default' ) {
		return self::valid_key( $key ) ? $this->offset( $key, $offset, $group, 1 ) : false;
	}

	public function decr( $key, $offset = 1, $group = 'default' ) {
		return self::valid_key( $key ) ? $this->offset( $key, $offset, $group, -1 ) : false;
	}

	/** This site's cache, everywhere: a new generation (other sites keep theirs). */
	public function flush() {
		$this->cache  = array();
		$this->absent = array();
		if ( null === $this->redis && defined( 'MURAKUMO_REDIS' ) ) {
			$this->lost_writes = true;
		}
		if ( null !== $this->redis ) {
			$generation = $this->call( 'incr', $this->prefix . ':generation' );
			if ( false === $generation ) {
				return false;
			}
			$this->generation = (string) $generation;
		}
		return true;
	}

	public function flush_runtime() {
		$this->cache  = array();
		$this->absent = array();
		return true;
	}

	public function flush_group( $group ) {
		$group = self::group( $group );
		$this->changed( $group );
		unset( $this->cache[ $group ], $this->absent[ $group ] );
		if ( ! $this->persistent( $group ) ) {
			return true;
		}
		$scope   = isset( $this->global_groups[ $group ] ) ? 'g' : $this->blog_prefix;
		$pattern = $this->prefix . ':' . $this->generation . ':' . $scope . ':' . $group . ':*';
		try {
			$iterator = null;
			do {
				++$this->redis_calls;
				$keys = $this->redis->scan( $iterator, $pattern, 500 );
				if ( $keys ) {
					$this->redis->del( $keys );
				}
			} while ( $iterator > 0 );
		} catch ( Exception $e ) {
			$this->fail( $e );
			return false;
		}
		return true;
	}

	public function add_global_groups( $groups ) {
		foreach ( (array) $groups as $group ) {
			$this->global_groups[ $group ] = true;
		}
	}

	public function add_non_persistent_groups( $groups ) {
		foreach ( (array) $groups as $group ) {
			$this->non_persistent_groups[ $group ] = true;
		}
	}

	public function switch_to_blog( $blog_id ) {
		$this->blog_prefix = $this->multisite ? (string) (int) $blog_id : '1';
	}

	public function close() {
		if ( null !== $this->redis ) {
			try {
				$this->redis->close();
			} catch ( Exception $e ) {
				// Closing is best effort.
			}
			$this->redis = null;
		}
		return true;
	}

	/** Whether this request reaches Redis. */
	public function is_connected() {
		return null !== $this->redis;
	}

	public function stats() {
		echo '<p><strong>Cache hits:</strong> ' . (int) $this->cache_hits . '<br />';
		echo '<strong>Cache misses:</strong> ' . (int) $this->cache_misses . '<br />';
		echo '<strong>Redis hits:</strong> ' . (int) $this->redis_hits . '<br />';
		echo '<strong>Redis calls:</strong> ' . (int) $this->redis_calls . '</p>';
	}
}

function wp_cache_init() {
	$GLOBALS['wp_object_cache'] = new Murakumo_Object_Cache();
	// Without Redis this request has no persistent cache: WordPress then
	// keeps transients in the database, and Site Health says so.
	if ( ! $GLOBALS['wp_object_cache']->was_connected_at_start() ) {
		wp_using_ext_object_cache( false );
	}
}

function wp_cache_add( $key, $data, $group = '', $expire = 0 ) {
	return $GLOBALS['wp_object_cache']->add( $key, $data, $group, $expire );
}

function wp_cache_add_multiple( array $data, $group = '', $expire = 0 ) {
	return $GLOBALS['wp_object_cache']->add_multiple( $data, $group, $expire );
}

function wp_cache_replace( $key, $data, $group = '', $expire = 0 ) {
	return $GLOBALS['wp_object_cache']->replace( $key, $data, $group, $expire );
}

function wp_cache_set( $key, $data, $group = '', $expire = 0 ) {
	return $GLOBALS['wp_object_cache']->set( $key, $data, $group, $expire );
}

function wp_cache_set_multiple( array $data, $group = '', $expire = 0 ) {
	return $GLOBALS['wp_object_cache']->set_multiple( $data, $group, $expire );
}

function wp_cache_get( $key, $group = '', $force = false, &$found = null ) {
	return $GLOBALS['wp_object_cache']->get( $key, $group, $force, $found );
}

function wp_cache_get_multiple( $keys, $group = '', $force = false ) {
	return $GLOBALS['wp_object_cache']->get_multiple( $keys, $group, $force );
}

function wp_cache_delete( $key, $group = '' ) {
	return $GLOBALS['wp_object_cache']->delete( $key, $group );
}

function wp_cache_delete_multiple( array $keys, $group = '' ) {
	return $GLOBALS['wp_object_cache']->delete_multiple( $keys, $group );
}

function wp_cache_incr( $key, $offset = 1, $group = '' ) {
	return $GLOBALS['wp_object_cache']->incr( $key, $offset, $group );
}

function wp_cache_decr( $key, $offset = 1, $group = '' ) {
	return $GLOBALS['wp_object_cache']->decr( $key, $offset, $group );
}

function wp_cache_flush() {
	return $GLOBALS['wp_object_cache']->flush();
}

function wp_cache_flush_runtime() {
	return $GLOBALS['wp_object_cache']->flush_runtime();
}

function wp_cache_flush_group( $group ) {
	return $GLOBALS['wp_object_cache']->flush_group( $group );
}

function wp_cache_supports( $feature ) {
	switch ( $feature ) {
		case 'add_multiple':
		case 'set_multiple':
		case 'get_multiple':
		case 'delete_multiple':
		case 'flush_runtime':
		case 'flush_group':
			return true;
		default:
			return false;
	}
}

function wp_cache_close() {
	return $GLOBALS['wp_object_cache']->close();
}

function wp_cache_add_global_groups( $groups ) {
	$GLOBALS['wp_object_cache']->add_global_groups( $groups );
}

function wp_cache_add_non_persistent_groups( $groups ) {
	$GLOBALS['wp_object_cache']->add_non_persistent_groups( $groups );
}

function wp_cache_switch_to_blog( $blog_id ) {
	$GLOBALS['wp_object_cache']->switch_to_blog( $blog_id );
}

function wp_cache_reset() {
	_deprecated_function( __FUNCTION__, '3.5.0', 'wp_cache_switch_to_blog()' );
	$GLOBALS['wp_object_cache']->flush_runtime();
}
