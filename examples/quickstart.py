#!/usr/bin/env python3
"""The user guide's Quick Start ("5-Minute Tutorial") as a runnable script.

    python examples/quickstart.py      # SQLite file data/cardlink.db under the current folder
    DATABASE_URL=postgresql://user:pass@host/db python examples/quickstart.py

It prints what the guide prints. Safe to run again on the same database: a device
or card stored by an earlier run is reused. Without ``CARDLINK_ENCRYPTION_KEY`` a
throwaway key is generated for this run (and said so on stderr).
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timedelta

from cryptography.fernet import Fernet

from cardlink.database import (
    CardProfile,
    CardType,
    DatabaseError,
    DatabaseManager,
    DataExporter,
    Device,
    DeviceType,
    ExportFormat,
    UnitOfWork,
)


def ensure_encryption_key() -> None:
    """Generate a throwaway Fernet key when none is configured, and say so on stderr."""
    if os.environ.get("CARDLINK_ENCRYPTION_KEY", "").strip():
        return
    os.environ["CARDLINK_ENCRYPTION_KEY"] = Fernet.generate_key().decode()
    print(
        "note: CARDLINK_ENCRYPTION_KEY is not set; using a throwaway key for this run "
        "(PSK keys stored now cannot be decrypted later - set the variable to keep them)",
        file=sys.stderr,
    )


def main() -> None:
    ensure_encryption_key()

    # 1. Initialize database
    manager = DatabaseManager()
    manager.initialize()
    manager.create_tables()
    try:
        # 2. Create a device
        with UnitOfWork(manager) as uow:
            device = uow.devices.find_by_id("RF8M33XXXXX")
            if device is None:  # a re-run reuses the device of the first run
                device = Device(
                    id="RF8M33XXXXX",
                    device_type=DeviceType.PHONE,
                    name="Test Phone",
                    manufacturer="Samsung",
                    model="Galaxy S21",
                    imei="123456789012345",
                )
                uow.devices.create(device)
            uow.commit()
            print(f"Created device: {device.id}")

        # 3. Create a card profile
        with UnitOfWork(manager) as uow:
            card = uow.cards.find_by_id("89011234567890123456")
            if card is None:  # a re-run reuses the card of the first run
                card = CardProfile(
                    iccid="89011234567890123456",
                    imsi="310120987654321",
                    card_type=CardType.USIM,
                    psk_identity="card_001",
                    admin_url="https://admin.example.com:8443/api",
                )
                # Store PSK with encryption
                uow.cards.create_with_psk(card, b"my_secret_psk_key_16")
            uow.commit()
            print(f"Created card: {card.iccid}")

        # 4. Query devices
        with UnitOfWork(manager) as uow:
            # Find all phones
            phones = uow.devices.find_phones()
            print(f"Found {len(phones)} phone(s)")

            # Search devices
            results = uow.devices.search("Samsung")
            for device in results:
                print(f"  - {device.name}: {device.model}")

        # 5. Query sessions
        with UnitOfWork(manager) as uow:
            # Get recent sessions
            sessions = uow.sessions.find_by_date_range(
                start=datetime.now() - timedelta(days=7),
                end=datetime.now(),
            )
            print(f"Sessions in last 7 days: {len(sessions)}")

            # Get statistics
            stats = uow.sessions.get_statistics(days=30)
            print(f"Success rate: {stats['success_rate']:.1f}%")
            print(f"Avg duration: {stats['avg_duration_ms']:.0f}ms")

        # 6. Export database
        with UnitOfWork(manager) as uow:
            exporter = DataExporter(uow)
            data = exporter.export_all(ExportFormat.JSON)

            with open("backup.json", "w") as f:
                f.write(data)
            print("Database exported to backup.json")
    finally:
        # Cleanup
        manager.close()


if __name__ == "__main__":
    try:
        main()
    except DatabaseError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
