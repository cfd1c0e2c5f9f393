"""clients users grants tokens

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import authserver.db

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('clients',
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('client_name', sa.String(length=200), nullable=False),
    sa.Column('grant_types', sa.Text(), nullable=False),
    sa.Column('redirect_uris', sa.Text(), nullable=False),
    sa.Column('post_logout_redirect_uris', sa.Text(), nullable=False),
    sa.Column('scope', sa.Text(), nullable=False),
    sa.Column('default_scope', sa.Text(), nullable=False),
    sa.Column('audiences', sa.Text(), nullable=False),
    sa.Column('token_endpoint_auth_method', sa.String(length=32), nullable=False),
    sa.Column('jwks', sa.Text(), nullable=True),
    sa.Column('jwks_uri', sa.Text(), nullable=True),
    sa.Column('ip_allowlist', sa.Text(), nullable=False),
    sa.Column('access_token_ttl', sa.Integer(), nullable=True),
    sa.Column('refresh_token_ttl', sa.Integer(), nullable=True),
    sa.Column('id_token_signed_response_alg', sa.String(length=16), nullable=False),
    sa.Column('skip_consent', sa.Boolean(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('secret_digest', sa.String(length=64), nullable=True),
    sa.Column('secret_expires_at', authserver.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('previous_secret_digest', sa.String(length=64), nullable=True),
    sa.Column('previous_secret_expires_at', authserver.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('tokens_revoked_before', authserver.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', authserver.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', authserver.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('deleted_at', authserver.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('client_id', name=op.f('pk_clients'))
    )
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_clients_deleted_at'), ['deleted_at'], unique=False)

    op.create_table('revoked_tokens',
    sa.Column('jti', sa.String(length=64), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('revoked_at', authserver.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', authserver.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('jti', name=op.f('pk_revoked_tokens'))
    )
    with op.batch_alter_table('revoked_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_revoked_tokens_expires_at'), ['expires_at'], unique=False)

    op.create_table('used_client_assertions',
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('jti', sa.String(length=255), nullable=False),
    sa.Column('expires_at', authserver.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('client_id', 'jti', name=op.f('pk_used_client_assertions'))
    )
    with op.batch_alter_table('used_client_assertions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_used_client_assertions_expires_at'), ['expires_at'], unique=False)

    op.create_table('users',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('username', sa.String(length=150), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('email_verified', sa.Boolean(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('given_name', sa.String(length=100), nullable=True),
    sa.Column('family_name', sa.String(length=100), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('tokens_revoked_before', authserver.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', authserver.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', authserver.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('deleted_at', authserver.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('username', name=op.f('uq_users_username'))
    )
    op.create_table('authorization_codes',
    sa.Column('code_digest', sa.String(length=64), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('session_sid', sa.String(length=64), nullable=True),
    sa.Column('redirect_uri', sa.Text(), nullable=False),
    sa.Column('scope', sa.Text(), nullable=False),
    sa.Column('audience', sa.Text(), nullable=True),
    sa.Column('nonce', sa.Text(), nullable=True),
    sa.Column('code_challenge', sa.String(length=128), nullable=False),
    sa.Column('code_challenge_method', sa.String(length=16), nullable=False),
    sa.Column('auth_time', authserver.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_at', authserver.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', authserver.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('consumed_at', authserver.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('issued_jti', sa.String(length=64), nullable=True),
    sa.Column('issued_jti_expires_at', authserver.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('issued_family_id', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_authorization_codes_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('code_digest', name=op.f('pk_authorization_codes'))
    )
    with op.batch_alter_table('authorization_codes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_authorization_codes_expires_at'), ['expires_at'], unique=False)

    op.create_table('browser_sessions',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('sid', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('auth_time', authserver.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_at', authserver.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', authserver.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ended_at', authserver.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ip', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_browser_sessions_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_browser_sessions')),
    sa.UniqueConstraint('sid', name=op.f('uq_browser_sessions_sid'))
    )
    with op.batch_alter_table('browser_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_browser_sessions_user_id'), ['user_id'], unique=False)

    op.create_table('consents',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('scope', sa.Text(), nullable=False),
    sa.Column('granted_at', authserver.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', authserver.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_consents_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consents')),
    sa.UniqueConstraint('user_id', 'client_id', name=op.f('uq_consents_user_id'))
    )
    with op.batch_alter_table('consents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consents_client_id'), ['client_id'], unique=False)

    op.create_table('refresh_families',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('scope', sa.Text(), nullable=False),
    sa.Column('audience', sa.Text(), nullable=True),
    sa.Column('auth_time', authserver.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('session_sid', sa.String(length=64), nullable=True),
    sa.Column('created_at', authserver.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', authserver.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoke_reason', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_refresh_families_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_refresh_families'))
    )
    with op.batch_alter_table('refresh_families', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_refresh_families_client_id'), ['client_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_refresh_families_user_id'), ['user_id'], unique=False)

    op.create_table('refresh_tokens',
    sa.Column('token_digest', sa.String(length=64), nullable=False),
    sa.Column('family_id', sa.String(length=64), nullable=False),
    sa.Column('scope', sa.Text(), nullable=False),
    sa.Column('created_at', authserver.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', authserver.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', authserver.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['family_id'], ['refresh_families.id'], name=op.f('fk_refresh_tokens_family_id_refresh_families'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('token_digest', name=op.f('pk_refresh_tokens'))
    )
    with op.batch_alter_table('refresh_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_refresh_tokens_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_refresh_tokens_family_id'), ['family_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('refresh_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_refresh_tokens_family_id'))
        batch_op.drop_index(batch_op.f('ix_refresh_tokens_expires_at'))

    op.drop_table('refresh_tokens')
    with op.batch_alter_table('refresh_families', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_refresh_families_user_id'))
        batch_op.drop_index(batch_op.f('ix_refresh_families_client_id'))

    op.drop_table('refresh_families')
    with op.batch_alter_table('consents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consents_client_id'))

    op.drop_table('consents')
    with op.batch_alter_table('browser_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_browser_sessions_user_id'))

    op.drop_table('browser_sessions')
    with op.batch_alter_table('authorization_codes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_authorization_codes_expires_at'))

    op.drop_table('authorization_codes')
    op.drop_table('users')
    with op.batch_alter_table('used_client_assertions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_used_client_assertions_expires_at'))

    op.drop_table('used_client_assertions')
    with op.batch_alter_table('revoked_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_revoked_tokens_expires_at'))

    op.drop_table('revoked_tokens')
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_clients_deleted_at'))

    op.drop_table('clients')
