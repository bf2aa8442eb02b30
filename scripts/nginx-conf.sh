# scripts/nginx-conf.sh: sourced (not run) by tests/netlib.sh and
# bench/lib.sh, which both run nginx on 127.0.0.1.
#
# nginx_conf DIR PORT ACCESS_LOG SERVER_BODY: writes DIR/nginx.conf, an
# nginx in the foreground of its caller (no master, one worker) on
# 127.0.0.1:PORT, its pid, error log and temporary files under DIR;
# ACCESS_LOG is the http block's access log directive(s) ("access_log
# off;"), SERVER_BODY the server block's lines. Run it with
# `nginx -c DIR/nginx.conf -p DIR`.
nginx_conf() {
	local dir=$1 port=$2 log=$3 body=$4
	mkdir -p "$dir/tmp"
	cat >"$dir/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
user root;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 256; }
http {
	client_body_temp_path $dir/tmp/body;
	proxy_temp_path $dir/tmp/proxy;
	fastcgi_temp_path $dir/tmp/fastcgi;
	uwsgi_temp_path $dir/tmp/uwsgi;
	scgi_temp_path $dir/tmp/scgi;
	$log
	types { application/json json; }
	default_type application/octet-stream;
	sendfile on;
	keepalive_requests 100000;
	server {
		listen 127.0.0.1:$port;
		$body
	}
}
CONF
}
