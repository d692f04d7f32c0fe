"""Initial schema: sweeps, trials, sweep_trials, attempts, epochs, checkpoints.

Revision ID: 0001
Revises:
Create Date: 2025-12-04

Timestamps are ``timestamptz`` on PostgreSQL (the ORM's ``UTCDateTime`` stores UTC
text on SQLite). Constraint and index names follow ``db.schema.NAMING_CONVENTION``.
A revision is a frozen snapshot: it does not import ``db.schema``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sweeps',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False, comment='Surrogate key, referenced by sweep_trials.'),
    sa.Column('name', sa.String(length=200), nullable=False, comment="The sweep's name, unique (e.g. the grid file's stem)."),
    sa.Column('grid_text', sa.Text(), nullable=False, comment="The grid file's text as last launched (YAML)."),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False, comment='When the sweep was first created (UTC).'),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False, comment='When grid_text last changed (UTC).'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sweeps')),
    sa.UniqueConstraint('name', name=op.f('uq_sweeps_name'))
    )
    op.create_table('trials',
    sa.Column('trial_id', sa.String(length=64), nullable=False, comment="TrialSpec.spec_id: sha256 hex of the spec's canonical JSON."),
    sa.Column('spec', sa.Text(), nullable=False, comment="The spec's canonical JSON (sha256 of this text is trial_id)."),
    sa.Column('model', sa.String(length=64), nullable=False, comment='Spec field: registered model variant.'),
    sa.Column('dataset', sa.String(length=64), nullable=False, comment='Spec field: dataset name.'),
    sa.Column('latent_dim', sa.Integer(), nullable=True, comment='Spec field: n, latent size / embedding width; NULL when the architecture fixes it.'),
    sa.Column('lam', sa.Float(), nullable=False, comment="Spec field: lambda, weight of MSE in the encoder's loss."),
    sa.Column('mask_ratio', sa.Float(), nullable=False, comment='Spec field: fraction of patches masked in training (0 = off).'),
    sa.Column('mask_variant', sa.String(length=8), nullable=True, comment='Spec field: masking loss variant v1/v2; NULL when off.'),
    sa.Column('seed', sa.Integer(), nullable=False, comment='Spec field: seed of everything random.'),
    sa.Column('epochs', sa.Integer(), nullable=False, comment='Spec field: number of training epochs.'),
    sa.Column('status', sa.String(length=16), nullable=False, comment='pending, running, completed, failed or interrupted.'),
    sa.Column('attempts', sa.Integer(), nullable=False, comment='How many attempts were claimed (the newest is attempts.attempt = this).'),
    sa.Column('last_error', sa.Text(), nullable=True, comment="First line of the last failure's error; NULL once completed."),
    sa.Column('best_epoch', sa.Integer(), nullable=True, comment='Epoch with the lowest test_loss (earliest on ties); set when completed.'),
    sa.Column('best_test_loss', sa.Float(), nullable=True, comment='test_loss at best_epoch.'),
    sa.Column('best_test_mse', sa.Float(), nullable=True, comment='test_mse at best_epoch.'),
    sa.Column('best_test_ce', sa.Float(), nullable=True, comment='test_ce at best_epoch.'),
    sa.Column('best_test_acc', sa.Float(), nullable=True, comment='test_acc at best_epoch.'),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False, comment='When the trial was first upserted (UTC).'),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False, comment='When status or results last changed (UTC).'),
    sa.CheckConstraint("status IN ('pending', 'running', 'completed', 'failed', 'interrupted')", name=op.f('ck_trials_status')),
    sa.CheckConstraint('attempts >= 0', name=op.f('ck_trials_attempts_nonnegative')),
    sa.PrimaryKeyConstraint('trial_id', name=op.f('pk_trials'))
    )
    op.create_index(op.f('ix_trials_epochs'), 'trials', ['epochs'], unique=False)
    op.create_index(op.f('ix_trials_lam'), 'trials', ['lam'], unique=False)
    op.create_index(op.f('ix_trials_latent_dim'), 'trials', ['latent_dim'], unique=False)
    op.create_index(op.f('ix_trials_mask_ratio'), 'trials', ['mask_ratio'], unique=False)
    op.create_index(op.f('ix_trials_mask_variant'), 'trials', ['mask_variant'], unique=False)
    op.create_index(op.f('ix_trials_model_dataset'), 'trials', ['model', 'dataset'], unique=False)
    op.create_index(op.f('ix_trials_seed'), 'trials', ['seed'], unique=False)
    op.create_index(op.f('ix_trials_status'), 'trials', ['status'], unique=False)
    op.create_index(op.f('ix_trials_updated_at'), 'trials', ['updated_at'], unique=False)
    op.create_table('attempts',
    sa.Column('trial_id', sa.String(length=64), nullable=False, comment='The trial attempted.'),
    sa.Column('attempt', sa.Integer(), autoincrement=False, nullable=False, comment="1, 2, ...: the trial's attempts counter when claimed."),
    sa.Column('start_epoch', sa.Integer(), nullable=False, comment='First epoch this attempt trains (> 1 when resumed from a checkpoint).'),
    sa.Column('host', sa.String(length=255), nullable=False, comment='Hostname of the worker.'),
    sa.Column('pid', sa.Integer(), nullable=False, comment='Process id of the worker.'),
    sa.Column('run_id', sa.String(length=64), nullable=True, comment='Id of the launch (driver run) that scheduled the attempt.'),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False, comment='When claimed (UTC).'),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=False, comment='Last sign of life: claim, heartbeat or epoch (UTC).'),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True, comment='When it ended (UTC); NULL while running.'),
    sa.Column('status', sa.String(length=16), nullable=False, comment='running, completed, failed or interrupted.'),
    sa.Column('error', sa.Text(), nullable=True, comment='Why it failed or was interrupted (full message).'),
    sa.Column('traceback', sa.Text(), nullable=True, comment='Python traceback of a failure, if any.'),
    sa.CheckConstraint("status IN ('running', 'completed', 'failed', 'interrupted')", name=op.f('ck_attempts_status')),
    sa.ForeignKeyConstraint(['trial_id'], ['trials.trial_id'], name=op.f('fk_attempts_trial_id_trials'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('trial_id', 'attempt', name=op.f('pk_attempts'))
    )
    op.create_index(op.f('ix_attempts_run_id'), 'attempts', ['run_id'], unique=False)
    op.create_index(op.f('ix_attempts_status'), 'attempts', ['status'], unique=False)
    op.create_table('checkpoints',
    sa.Column('trial_id', sa.String(length=64), nullable=False, comment='The trial.'),
    sa.Column('kind', sa.String(length=8), nullable=False, comment='last or best.'),
    sa.Column('epoch', sa.Integer(), nullable=False, comment='Epoch whose state the file holds.'),
    sa.Column('uri', sa.Text(), nullable=False, comment='Path or URI of the file under the artifact root.'),
    sa.Column('sha256', sa.String(length=64), nullable=False, comment="sha256 hex of the file's bytes."),
    sa.Column('bytes', sa.BigInteger(), nullable=False, comment='File size in bytes.'),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False, comment='When written (UTC).'),
    sa.CheckConstraint("kind IN ('last', 'best')", name=op.f('ck_checkpoints_kind')),
    sa.ForeignKeyConstraint(['trial_id'], ['trials.trial_id'], name=op.f('fk_checkpoints_trial_id_trials'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('trial_id', 'kind', name=op.f('pk_checkpoints'))
    )
    op.create_table('epochs',
    sa.Column('trial_id', sa.String(length=64), nullable=False, comment='The trial.'),
    sa.Column('epoch', sa.Integer(), autoincrement=False, nullable=False, comment='1-based epoch.'),
    sa.Column('train_loss', sa.Float(), nullable=False, comment='lam * train_mse + (1 - lam) * train_ce, epoch mean.'),
    sa.Column('train_mse', sa.Float(), nullable=False, comment='Reconstruction loss trained on (masked objective when masking).'),
    sa.Column('train_ce', sa.Float(), nullable=False, comment='Cross-entropy on the training set.'),
    sa.Column('test_loss', sa.Float(), nullable=False, comment='lam * test_mse + (1 - lam) * test_ce: the best-epoch criterion.'),
    sa.Column('test_mse', sa.Float(), nullable=False, comment='Reconstruction MSE on the test set.'),
    sa.Column('test_ce', sa.Float(), nullable=False, comment='Cross-entropy on the test set.'),
    sa.Column('test_acc', sa.Float(), nullable=False, comment='Test accuracy, a fraction in [0, 1].'),
    sa.Column('train_seconds', sa.Float(), nullable=False, comment='Wall seconds of the training pass (no evaluation).'),
    sa.Column('masked_test_loss', sa.Float(), nullable=True, comment='test_loss with training-style masking (masked ViT only).'),
    sa.Column('masked_test_mse', sa.Float(), nullable=True, comment='test_mse with masking.'),
    sa.Column('masked_test_ce', sa.Float(), nullable=True, comment='test_ce with masking.'),
    sa.Column('masked_test_acc', sa.Float(), nullable=True, comment='test_acc with masking.'),
    sa.Column('attempt', sa.Integer(), nullable=True, comment='The attempt that wrote this row (last writer wins).'),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False, comment='When written (UTC).'),
    sa.ForeignKeyConstraint(['trial_id'], ['trials.trial_id'], name=op.f('fk_epochs_trial_id_trials'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('trial_id', 'epoch', name=op.f('pk_epochs'))
    )
    op.create_index(op.f('ix_epochs_recorded_at'), 'epochs', ['recorded_at'], unique=False)
    op.create_table('sweep_trials',
    sa.Column('sweep_id', sa.Integer(), nullable=False, comment='sweeps.id of the sweep.'),
    sa.Column('trial_id', sa.String(length=64), nullable=False, comment='trials.trial_id of the member trial.'),
    sa.ForeignKeyConstraint(['sweep_id'], ['sweeps.id'], name=op.f('fk_sweep_trials_sweep_id_sweeps'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['trial_id'], ['trials.trial_id'], name=op.f('fk_sweep_trials_trial_id_trials'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('sweep_id', 'trial_id', name=op.f('pk_sweep_trials'))
    )
    op.create_index(op.f('ix_sweep_trials_trial_id'), 'sweep_trials', ['trial_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_sweep_trials_trial_id'), table_name='sweep_trials')
    op.drop_table('sweep_trials')
    op.drop_index(op.f('ix_epochs_recorded_at'), table_name='epochs')
    op.drop_table('epochs')
    op.drop_table('checkpoints')
    op.drop_index(op.f('ix_attempts_status'), table_name='attempts')
    op.drop_index(op.f('ix_attempts_run_id'), table_name='attempts')
    op.drop_table('attempts')
    op.drop_index(op.f('ix_trials_updated_at'), table_name='trials')
    op.drop_index(op.f('ix_trials_status'), table_name='trials')
    op.drop_index(op.f('ix_trials_seed'), table_name='trials')
    op.drop_index(op.f('ix_trials_model_dataset'), table_name='trials')
    op.drop_index(op.f('ix_trials_mask_variant'), table_name='trials')
    op.drop_index(op.f('ix_trials_mask_ratio'), table_name='trials')
    op.drop_index(op.f('ix_trials_latent_dim'), table_name='trials')
    op.drop_index(op.f('ix_trials_lam'), table_name='trials')
    op.drop_index(op.f('ix_trials_epochs'), table_name='trials')
    op.drop_table('trials')
    op.drop_table('sweeps')
