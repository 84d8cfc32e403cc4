#!/bin/sh
set -eu
case "${1:-}" in
  postgres)
    mkdir -p "$PGDATA" /run/postgresql
    chown -R postgres:postgres "$PGDATA" /run/postgresql
    chmod 700 "$PGDATA"
    if [ ! -s "$PGDATA/PG_VERSION" ]; then
      printf '%s\n' "$POSTGRES_PASSWORD" > /tmp/pwfile
      chown postgres /tmp/pwfile
      runuser -u postgres -- initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile=/tmp/pwfile \
        --auth-local=trust --auth-host=scram-sha-256 >/dev/null
      rm -f /tmp/pwfile
      echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
      echo "CREATE DATABASE \"$POSTGRES_DB\" OWNER \"$POSTGRES_USER\";" \
        | runuser -u postgres -- postgres --single -D "$PGDATA" -j postgres >/dev/null
    fi
    shift
    exec runuser -u postgres -- postgres -D "$PGDATA" -c listen_addresses='*' "$@"
    ;;
  nginx)
    for template in /etc/nginx/templates/*.template; do
      [ -e "$template" ] || continue
      out="/etc/nginx/conf.d/$(basename "$template" .template)"
      # Only variables set in the environment are replaced (nginx's own $host etc. stay), as nginx's image does.
      envsubst "$(env | cut -d= -f1 | sed 's/^/$/' | tr '\n' ' ')" < "$template" > "$out"
    done
    exec "$@"
    ;;
  *)
    exec "$@"
    ;;
esac
